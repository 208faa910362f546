"""Encoder and decoder builders: MLP, stacked MLP, 1-D and 2-D convolutional.

Every builder is a plain ``nn.Module`` with keyword-only arguments, so a config can build it by
name (see :data:`ENCODERS` / :data:`DECODERS`, registered by the core plugin). Shapes are noted
inline: ``B`` batch, ``C`` channels, ``T`` time, ``H``/``W`` image size, ``D`` features.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "MLP",
    "Conv1dEncoder",
    "Conv1dDecoder",
    "Conv2dEncoder",
    "Conv2dDecoder",
    "ENCODERS",
    "DECODERS",
    "make_activation",
]

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
}


def make_activation(name: str | None) -> nn.Module:
    """An activation module by name (``None`` or ``"identity"`` gives ``nn.Identity``)."""
    if name is None or name == "identity":
        return nn.Identity()
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


def _norm(kind: str | None, channels: int, *, dims: int) -> nn.Module:
    if kind is None:
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm1d(channels) if dims <= 1 else nn.BatchNorm2d(channels)
    if kind == "instance":
        # Instance norm without affine parameters: the AdaIN content encoder's choice
        # (Chou et al. 2019, arXiv 1904.05742), which strips per-utterance statistics.
        return nn.InstanceNorm1d(channels) if dims <= 1 else nn.InstanceNorm2d(channels)
    if kind == "layer":
        if dims == 0:
            return nn.LayerNorm(channels)
        return nn.GroupNorm(1, channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    raise ValueError(f"unknown norm {kind!r}; expected batch, instance, layer, group or None")


def _positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_conv_args(
    in_channels: int,
    out_channels: int,
    channels: Sequence[int],
    strides: Sequence[int] | None,
    kernel_size: int,
) -> tuple[int, ...]:
    """Validate a 1-D conv stack's arguments; returns the strides (default: all 1)."""
    _positive("in_channels", in_channels)
    _positive("out_channels", out_channels)
    strides = tuple(strides) if strides is not None else (1,) * len(channels)
    if len(strides) != len(channels):
        raise ValueError(
            f"strides {strides} must have one entry per layer in channels {tuple(channels)}"
        )
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    return strides


class _Block(nn.Sequential):
    """An ``nn.Sequential`` that skips its ``nn.Identity`` placeholders when called.

    MLP blocks keep fixed positions (0 affine, 1 norm, 2 activation, 3 dropout) so that
    ``layers[i][0]`` and the state-dict keys do not depend on the options; the placeholders
    for absent options cost a module call each, which is skipped here.
    """

    def forward(self, x: Tensor) -> Tensor:
        for module in self:
            if type(module) is not nn.Identity:
                x = module(x)
        return x


class MLP(nn.Module):
    """A multilayer perceptron whose hidden layers are addressable one by one.

    Used as encoder (inputs of any shape are flattened after the batch axis) and as decoder
    (``out_shape`` reshapes the output). ``layers[i]`` is the i-th affine block, so a deep network
    can be pretrained layer by layer as a stack of autoencoders (Hinton & Salakhutdinov 2006;
    Bengio et al. 2007) and the stack reused as initialisation.

    Args:
        in_dim: Number of input features (after flattening).
        out_dim: Number of output features.
        hidden: Sizes of the hidden layers, in order, e.g. ``(256, 128)``.
        activation: Hidden-layer activation name (relu, gelu, silu, tanh, elu, leaky_relu).
        norm: ``None``, ``"batch"`` or ``"layer"`` normalisation after each hidden affine map.
        dropout: Dropout probability after each hidden activation.
        out_activation: Activation after the last layer (``None`` for a linear output).
        out_shape: Shape (without batch) the output is reshaped to; product must be ``out_dim``.
    """

    def __init__(
        self,
        *,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (),
        activation: str = "relu",
        norm: str | None = None,
        dropout: float = 0.0,
        out_activation: str | None = None,
        out_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        _positive("in_dim", in_dim)
        _positive("out_dim", out_dim)
        for h in hidden:
            _positive("hidden sizes", h)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if out_shape is not None and math.prod(out_shape) != out_dim:
            raise ValueError(f"out_shape {tuple(out_shape)} does not hold out_dim={out_dim} values")
        self.in_dim, self.out_dim = in_dim, out_dim
        self.out_shape = tuple(out_shape) if out_shape is not None else None
        sizes = [in_dim, *hidden, out_dim]
        blocks: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            last = i == len(sizes) - 2
            if last:
                blocks.append(_Block(nn.Linear(a, b), make_activation(out_activation)))
            else:
                blocks.append(
                    _Block(
                        nn.Linear(a, b),
                        _norm(norm, b, dims=0),
                        make_activation(activation),
                        nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
                    )
                )
        self.layers = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2 or math.prod(x.shape[1:]) != self.in_dim:
            raise ValueError(
                f"MLP expects input of shape (B, {self.in_dim}) or (B, ...) with {self.in_dim} "
                f"values per example, got {tuple(x.shape)}"
            )
        h = x if x.dim() == 2 else x.flatten(1)  # (B, in_dim)
        for layer in self.layers:
            h = layer(h)
        if self.out_shape is not None:
            h = h.view(h.shape[0], *self.out_shape)
        return h


def _conv_stack(
    conv: type[nn.Module],
    channels: Sequence[int],
    strides: Sequence[int],
    *,
    kernel_size: int,
    norm: str | None,
    activation: str,
    dims: int,
    transpose: bool,
) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b, s in zip(channels[:-1], channels[1:], strides, strict=True):
        if transpose and s > 1:
            # kernel 2s, padding ceil(s/2), output padding s mod 2: length grows exactly s-fold
            # and every output sample is covered by two kernel taps (no checkerboard gaps).
            layer = conv(
                a, b, kernel_size=2 * s, stride=s, padding=(s + 1) // 2, output_padding=s % 2
            )
        else:
            layer = conv(a, b, kernel_size=kernel_size, stride=s, padding=kernel_size // 2)
        layers += [layer, _norm(norm, b, dims=dims), make_activation(activation)]
    return nn.Sequential(*layers)


class Conv1dEncoder(nn.Module):
    """1-D convolutional encoder for sequences: ``(B, C_in, T) -> (B, out_channels, T / prod(strides))``.

    Args:
        in_channels: Input channels (e.g. 80 mel bins).
        out_channels: Output channels (the bottleneck's input features, on axis 1).
        channels: Hidden channel sizes, one per convolution layer.
        strides: Stride of each hidden layer (2 halves the time axis); same length as ``channels``.
        kernel_size: Odd kernel size of the hidden layers.
        norm: ``"batch"``, ``"instance"`` (AdaIN-VC content encoder), ``"group"``, ``"layer"`` or None.
        activation: Activation name.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int] = (128, 128),
        strides: Sequence[int] | None = None,
        kernel_size: int = 5,
        norm: str | None = "batch",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        strides = _check_conv_args(in_channels, out_channels, channels, strides, kernel_size)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.downsample = math.prod(strides)
        self.body = _conv_stack(
            nn.Conv1d,
            [in_channels, *channels],
            strides,
            kernel_size=kernel_size,
            norm=norm,
            activation=activation,
            dims=1,
            transpose=False,
        )
        self.head = nn.Conv1d(
            channels[-1] if channels else in_channels, out_channels, kernel_size=1
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"Conv1dEncoder expects (B, {self.in_channels}, T), got {tuple(x.shape)}"
            )
        return self.head(self.body(x))  # (B, out_channels, T // downsample)


class Conv1dDecoder(nn.Module):
    """1-D convolutional decoder: ``(B, in_channels, T') -> (B, out_channels, T' * prod(strides))``.

    Args:
        in_channels: Code channels (the bottleneck's code size).
        out_channels: Output channels (e.g. 80 mel bins).
        channels: Hidden channel sizes, one per layer.
        strides: Upsampling factor of each layer (transposed convolution where > 1).
        kernel_size: Odd kernel size of the non-upsampling layers.
        norm: Normalisation name or None.
        activation: Activation name.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int] = (128, 128),
        strides: Sequence[int] | None = None,
        kernel_size: int = 5,
        norm: str | None = "batch",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        strides = _check_conv_args(in_channels, out_channels, channels, strides, kernel_size)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.upsample = math.prod(strides)
        self.body = _conv_stack(
            nn.ConvTranspose1d if any(s > 1 for s in strides) else nn.Conv1d,
            [in_channels, *channels],
            strides,
            kernel_size=kernel_size,
            norm=norm,
            activation=activation,
            dims=1,
            transpose=any(s > 1 for s in strides),
        )
        self.head = nn.Conv1d(
            channels[-1] if channels else in_channels, out_channels, kernel_size=1
        )

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() != 3 or z.shape[1] != self.in_channels:
            raise ValueError(
                f"Conv1dDecoder expects (B, {self.in_channels}, T), got {tuple(z.shape)}"
            )
        return self.head(self.body(z))


class Conv2dEncoder(nn.Module):
    """2-D convolutional encoder for images.

    ``(B, C, H, W) -> (B, out_dim)`` when ``out_dim`` is set (flatten + linear, for vector codes),
    else a feature map ``(B, out_channels, H / s, W / s)`` (for VQ-VAE style spatial codes).

    Args:
        in_channels: Image channels.
        image_size: Input height = width, needed to size the flattening layer.
        channels: Hidden channels, one per layer.
        strides: Stride of each layer (default 2 everywhere).
        kernel_size: Odd kernel size.
        out_dim: Vector output size; mutually exclusive with ``out_channels``.
        out_channels: Feature-map output channels (1x1 conv head).
        norm: Normalisation name or None.
        activation: Activation name.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        image_size: int,
        channels: Sequence[int] = (32, 64),
        strides: Sequence[int] | None = None,
        kernel_size: int = 3,
        out_dim: int | None = None,
        out_channels: int | None = None,
        norm: str | None = "batch",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if (out_dim is None) == (out_channels is None):
            raise ValueError(
                "set exactly one of out_dim (vector code) or out_channels (feature map)"
            )
        strides = tuple(strides) if strides is not None else (2,) * len(channels)
        if len(strides) != len(channels):
            raise ValueError(
                f"strides {strides} must have one entry per layer in channels {tuple(channels)}"
            )
        self.in_channels, self.image_size = in_channels, image_size
        self.body = _conv_stack(
            nn.Conv2d,
            [in_channels, *channels],
            strides,
            kernel_size=kernel_size,
            norm=norm,
            activation=activation,
            dims=2,
            transpose=False,
        )
        with torch.no_grad():
            shape = self.body(torch.zeros(1, in_channels, image_size, image_size)).shape
        self.feature_shape = tuple(shape[1:])
        if out_dim is not None:
            self.head: nn.Module = nn.Sequential(
                nn.Flatten(1), nn.Linear(math.prod(shape[1:]), out_dim)
            )
        else:
            self.head = nn.Conv2d(shape[1], out_channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"Conv2dEncoder expects (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}"
            )
        return self.head(self.body(x))


class Conv2dDecoder(nn.Module):
    """2-D convolutional decoder, the mirror of :class:`Conv2dEncoder`.

    ``(B, in_dim) -> (B, out_channels, image_size, image_size)`` when ``in_dim`` is set, or from a
    feature map ``(B, in_channels, h, w)``.

    Args:
        out_channels: Image channels produced.
        image_size: Output height = width; must equal ``h * prod(strides)``.
        channels: Hidden channels, one per upsampling layer (first is the widest).
        strides: Upsampling factor of each layer (default 2 everywhere).
        in_dim: Vector code size (a linear layer maps it to the smallest feature map).
        in_channels: Feature-map code channels.
        norm: Normalisation name or None.
        activation: Activation name.
        out_activation: Activation on the output (e.g. ``"sigmoid"``) or None for logits/means.
    """

    def __init__(
        self,
        *,
        out_channels: int = 1,
        image_size: int,
        channels: Sequence[int] = (64, 32),
        strides: Sequence[int] | None = None,
        in_dim: int | None = None,
        in_channels: int | None = None,
        norm: str | None = "batch",
        activation: str = "relu",
        out_activation: str | None = None,
    ) -> None:
        super().__init__()
        if (in_dim is None) == (in_channels is None):
            raise ValueError("set exactly one of in_dim (vector code) or in_channels (feature map)")
        strides = tuple(strides) if strides is not None else (2,) * len(channels)
        if len(strides) != len(channels):
            raise ValueError(
                f"strides {strides} must have one entry per layer in channels {tuple(channels)}"
            )
        factor = math.prod(strides)
        if image_size % factor:
            raise ValueError(f"image_size {image_size} is not divisible by the upsampling {factor}")
        self.base = image_size // factor
        self.image_size, self.in_dim, self.in_channels = image_size, in_dim, in_channels
        first = channels[0]
        if in_dim is not None:
            self.stem: nn.Module = nn.Sequential(
                nn.Linear(in_dim, first * self.base * self.base),
                make_activation(activation),
                nn.Unflatten(1, (first, self.base, self.base)),
            )
        else:
            self.stem = nn.Conv2d(in_channels, first, kernel_size=1)
        self.body = _conv_stack(
            nn.ConvTranspose2d,
            [first, *channels],
            strides,
            kernel_size=3,
            norm=norm,
            activation=activation,
            dims=2,
            transpose=True,
        )
        self.head = nn.Sequential(
            nn.Conv2d(channels[-1], out_channels, kernel_size=3, padding=1),
            make_activation(out_activation),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.head(self.body(self.stem(z)))


ENCODERS: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "conv1d": Conv1dEncoder,
    "conv2d": Conv2dEncoder,
}
DECODERS: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "conv1d": Conv1dDecoder,
    "conv2d": Conv2dDecoder,
}
