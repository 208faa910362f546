"""Building blocks of the voice-conversion models: length masks, masked statistics, padding,
the conv blocks (:class:`ConvBlock`, :class:`AdaINBlock`, :class:`Postnet`, :class:`ConvStack`),
the AdaIN decoder shared by AdaIN-VC and VQVC, the speaker encoder shared by AdaIN-VC and AutoVC,
and the argument checks every model shares.

Variable lengths: encoders that downsample in time pad their input internally to a multiple of
the total stride (:func:`_pad_time`); ``decode(..., length=T)`` crops back (:func:`_crop`), so
``forward`` and ``convert`` always return the input's ``T`` frames. Encoders mask padded frames
(``lengths``, :func:`length_mask`), so a speaker embedding does not depend on how much padding a
batch adds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqae.core.nets import make_activation

__all__ = [
    "length_mask",
    "masked_mean",
    "masked_instance_norm",
    "ConvBlock",
    "AdaINBlock",
    "Postnet",
    "ConvStack",
    "AdaINDecoder",
    "SpeakerEncoder",
]


# --------------------------------------------------------------------------------------------
# Masks, masked statistics, padding
# --------------------------------------------------------------------------------------------
def length_mask(lengths: Tensor | None, batch: int, frames: int, device: torch.device) -> Tensor:
    """``(B, 1, frames)`` float mask: 1 on the first ``lengths[b]`` frames, 0 after.

    Args:
        lengths: ``(B,)`` numbers of valid frames, or ``None`` (every frame valid).
        batch: ``B``.
        frames: Number of frames of the (possibly padded) tensor.
        device: Where to build the mask.
    """
    if lengths is None:
        return torch.ones(batch, 1, frames, device=device)
    lengths = torch.as_tensor(lengths, device=device)
    if lengths.shape != (batch,):
        raise ValueError(
            f"lengths must have shape ({batch},) (one frame count per example), "
            f"got {tuple(lengths.shape)}"
        )
    if bool((lengths < 1).any()) or bool((lengths > frames).any()):
        raise ValueError(f"lengths must lie in [1, {frames}] frames, got {lengths.tolist()}")
    steps = torch.arange(frames, device=device)
    return (steps[None, :] < lengths[:, None]).to(torch.float32)[:, None, :]


def masked_mean(h: Tensor, mask: Tensor) -> Tensor:
    """Mean over the valid frames: ``(B, C, T)``, mask ``(B, 1, T)`` -> ``(B, C)``."""
    mask = mask.to(h.dtype)
    return (h * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)


def masked_instance_norm(h: Tensor, mask: Tensor, *, eps: float = 1e-5) -> Tensor:
    """Instance normalisation over the valid frames, without affine parameters.

    Equals ``nn.InstanceNorm1d(C)(h)`` (biased variance, ``eps``) when every frame is valid;
    padded frames are set to zero.

    Args:
        h: ``(B, C, T)`` activations.
        mask: ``(B, 1, T)`` valid-frame mask.
        eps: Added to the variance.
    """
    mask = mask.to(h.dtype)
    n = mask.sum(-1, keepdim=True).clamp_min(1.0)  # (B, 1, 1)
    mean = (h * mask).sum(-1, keepdim=True) / n  # (B, C, 1)
    var = ((h - mean).pow(2) * mask).sum(-1, keepdim=True) / n
    return (h - mean) * torch.rsqrt(var + eps) * mask


def _pad_time(x: Tensor, multiple: int) -> Tensor:
    """Zero-pad the last axis of ``x`` up to a multiple of ``multiple``."""
    extra = (-x.shape[-1]) % multiple
    return F.pad(x, (0, extra)) if extra else x


def _check_mels(x: Tensor, n_mels: int, *, who: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{who}: expected a torch.Tensor of log-mels, got {type(x).__name__}")
    if x.dim() != 3 or x.shape[1] != n_mels:
        raise ValueError(
            f"{who}: expected normalised log-mels of shape (batch, {n_mels}, frames), "
            f"got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{who}: expected floating-point log-mels, got dtype {x.dtype}")


def _strides(strides: Sequence[int] | None, n_blocks: int, *, who: str) -> tuple[int, ...]:
    if strides is None:
        return (1,) * n_blocks
    out = tuple(int(s) for s in strides)
    if len(out) != n_blocks or any(s < 1 for s in out):
        raise ValueError(
            f"{who}: strides must hold one positive int per block ({n_blocks}), got {strides!r}"
        )
    return out


def _positive_int(name: str, value: Any, *, who: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive int, got {value!r}")


def _check_dropout(dropout: float, *, who: str) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{who}: dropout must be in [0, 1), got {dropout}")


def _check_sizes(
    who: str, *, kernel_size: int, dropout: float, postnet_layers: int = 0, **sizes: int
) -> None:
    """Validate a model's common constructor arguments; ``sizes`` must be positive ints."""
    for name, value in sizes.items():
        _positive_int(name, value, who=who)
    _check_kernel(kernel_size, who=who)
    _check_dropout(dropout, who=who)
    if postnet_layers == 1 or postnet_layers < 0:
        raise ValueError(f"{who}: postnet_layers must be 0 or >= 2, got {postnet_layers}")


def _check_kernel(kernel_size: int, *, who: str) -> None:
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"{who}: kernel_size must be an odd positive int, got {kernel_size!r}")


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------
class ConvBlock(nn.Module):
    """Residual 1-D conv block, masked: ``h -> norm(skip(h) + act(conv(act(conv(h)))))``.

    The first conv may stride in time (``stride``); the skip path then averages ``stride``
    frames. Padded frames (mask 0) are zeroed before every conv, so with zero padding the valid
    frames' outputs do not depend on how much padding follows them.

    Args:
        channels: Input and output channels.
        kernel_size: Odd kernel size of both convs.
        stride: Time downsampling factor (the input's length must be a multiple of it).
        norm: ``"instance"`` (masked instance norm without affine parameters: removes each
            utterance's per-channel mean and scale, the AdaIN-VC content encoder's choice),
            ``"batch"`` or ``None``.
        activation: Activation name (see :func:`seqae.core.nets.make_activation`).
        dropout: Dropout after the first activation.
    """

    def __init__(
        self,
        *,
        channels: int,
        kernel_size: int = 5,
        stride: int = 1,
        norm: str | None = None,
        activation: str = "leaky_relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if norm not in (None, "instance", "batch"):
            raise ValueError(f"ConvBlock: norm must be 'instance', 'batch' or None, got {norm!r}")
        pad = kernel_size // 2
        self.stride = stride
        self.norm = norm
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, stride=stride, padding=pad)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, padding=pad)
        self.act = make_activation(activation)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.batch_norm = nn.BatchNorm1d(channels) if norm == "batch" else None

    def forward(self, h: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``h`` ``(B, C, T)``, ``mask`` ``(B, 1, T)`` -> ``(B, C, T / stride)`` and its mask."""
        y = self.dropout(self.act(self.conv1(h)))  # (B, C, T / s)
        if self.stride > 1:
            mask = mask[..., :: self.stride]
            h = F.avg_pool1d(h, self.stride)
        y = self.act(self.conv2(y * mask))
        h = h + y
        if self.norm == "instance":
            h = masked_instance_norm(h, mask)
        elif self.batch_norm is not None:
            h = self.batch_norm(h)
        return h * mask, mask


class AdaINBlock(nn.Module):
    """Decoder block with adaptive instance normalisation (Huang & Belongie 2017; AdaIN-VC).

    ``h -> up(h) + act(AdaIN(conv(act(AdaIN(conv(up(h)))))))``: every conv output is instance
    normalised, then scaled by ``1 + gamma(s)`` and shifted by ``beta(s)``, both linear maps of the
    speaker embedding ``s``; ``up`` repeats each frame ``upsample`` times.

    Args:
        channels: Channels in and out.
        speaker_dim: Size of the speaker embedding.
        kernel_size: Odd kernel size.
        upsample: Time upsampling factor (nearest neighbour).
        activation: Activation name.
        dropout: Dropout after the first activation.
    """

    def __init__(
        self,
        *,
        channels: int,
        speaker_dim: int,
        kernel_size: int = 5,
        upsample: int = 1,
        activation: str = "leaky_relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.upsample = upsample
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, padding=pad)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, padding=pad)
        self.style = nn.Linear(speaker_dim, 4 * channels)  # gamma1, beta1, gamma2, beta2
        self.act = make_activation(activation)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @staticmethod
    def adain(h: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        """``IN(h) * (1 + gamma) + beta`` with ``h`` ``(B, C, T)``, ``gamma``/``beta`` ``(B, C)``."""
        return F.instance_norm(h) * (1.0 + gamma[..., None]) + beta[..., None]

    def forward(self, h: Tensor, speaker: Tensor) -> Tensor:
        """``h`` ``(B, C, T)``, ``speaker`` ``(B, S)`` -> ``(B, C, T * upsample)``."""
        if self.upsample > 1:
            h = h.repeat_interleave(self.upsample, dim=-1)
        g1, b1, g2, b2 = self.style(speaker).chunk(4, dim=-1)  # each (B, C)
        y = self.dropout(self.act(self.adain(self.conv1(h), g1, b1)))
        y = self.act(self.adain(self.conv2(y), g2, b2))
        return h + y


class Postnet(nn.Module):
    """Residual conv stack on the mel output (Tacotron 2's postnet, as AutoVC uses it).

    Args:
        n_mels: Mel bins in and out.
        channels: Hidden channels.
        n_layers: Number of convs (at least 2).
        kernel_size: Odd kernel size.
    """

    def __init__(self, *, n_mels: int, channels: int, n_layers: int, kernel_size: int = 5) -> None:
        super().__init__()
        if n_layers < 2:
            raise ValueError(f"Postnet: n_layers must be >= 2, got {n_layers}")
        pad = kernel_size // 2
        sizes = [n_mels] + [channels] * (n_layers - 1) + [n_mels]
        self.convs = nn.ModuleList(
            nn.Conv1d(a, b, kernel_size, padding=pad)
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )

    def forward(self, mel: Tensor) -> Tensor:
        """``(B, n_mels, T) -> (B, n_mels, T)``: ``mel`` plus a learned correction."""
        y = mel
        for i, conv in enumerate(self.convs):
            y = conv(y)
            if i < len(self.convs) - 1:
                y = torch.tanh(y)
        return mel + y


class ConvStack(nn.Module):
    """Input conv then masked residual :class:`ConvBlock` s: ``(B, in, T) -> (B, C, T / prod(strides))``.

    Args:
        in_channels: Input channels.
        channels: Hidden channels.
        n_blocks: Number of residual blocks.
        kernel_size: Odd kernel size.
        strides: Per-block time strides (``None``: no downsampling).
        norm: Normalisation after the input conv and after every block (see :class:`ConvBlock`).
        activation: Activation name.
        dropout: Dropout inside the blocks.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        channels: int,
        n_blocks: int,
        kernel_size: int = 5,
        strides: Sequence[int] | None = None,
        norm: str | None = None,
        activation: str = "leaky_relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.strides = _strides(strides, n_blocks, who="ConvStack")
        self.total_stride = math.prod(self.strides)
        self.norm = norm
        self.conv_in = nn.Conv1d(in_channels, channels, kernel_size, padding=kernel_size // 2)
        self.norm_in = nn.BatchNorm1d(channels) if norm == "batch" else None
        self.act = make_activation(activation)
        self.blocks = nn.ModuleList(
            ConvBlock(
                channels=channels,
                kernel_size=kernel_size,
                stride=s,
                norm=norm,
                activation=activation,
                dropout=dropout,
            )
            for s in self.strides
        )

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` ``(B, in, T)`` with ``T`` a multiple of ``total_stride``; returns ``(h, mask)``."""
        h = self.conv_in(x * mask)
        if self.norm == "instance":
            h = masked_instance_norm(h, mask)
        elif self.norm_in is not None:
            h = self.norm_in(h)
        h = self.act(h) * mask
        for block in self.blocks:
            h, mask = block(h, mask)
        return h, mask


# --------------------------------------------------------------------------------------------
# Speaker encoder (shared by AdaINVC and AutoVC)
# --------------------------------------------------------------------------------------------
class SpeakerEncoder(nn.Module):
    """Utterance -> speaker embedding: residual convs, masked global average pooling, an MLP.

    Padded frames are masked at every layer, so a padded batch gives the same embeddings as its
    utterances one by one.

    Args:
        n_mels: Mel bins of the input.
        channels: Conv channels.
        speaker_dim: Size of the embedding.
        n_blocks: Residual conv blocks.
        kernel_size: Odd kernel size.
        strides: Per-block time strides (cheaper on long inputs); ``None``: none.
        activation: Activation name.
        dropout: Dropout inside the blocks.
    """

    def __init__(
        self,
        *,
        n_mels: int = 80,
        channels: int = 128,
        speaker_dim: int = 128,
        n_blocks: int = 3,
        kernel_size: int = 5,
        strides: Sequence[int] | None = None,
        activation: str = "leaky_relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        who = "SpeakerEncoder"
        for name, value in (
            ("n_mels", n_mels),
            ("channels", channels),
            ("speaker_dim", speaker_dim),
        ):
            _positive_int(name, value, who=who)
        _check_kernel(kernel_size, who=who)
        _check_dropout(dropout, who=who)
        self.n_mels, self.speaker_dim = n_mels, speaker_dim
        self.convs = ConvStack(
            in_channels=n_mels,
            channels=channels,
            n_blocks=n_blocks,
            kernel_size=kernel_size,
            strides=strides,
            norm=None,
            activation=activation,
            dropout=dropout,
        )
        self.head = nn.Sequential(
            nn.Linear(channels, channels),
            make_activation(activation),
            nn.Linear(channels, speaker_dim),
        )

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``x`` ``(B, n_mels, T)``, ``lengths`` ``(B,)`` valid frames -> ``(B, speaker_dim)``."""
        _check_mels(x, self.n_mels, who="SpeakerEncoder")
        mask = length_mask(lengths, x.shape[0], x.shape[-1], x.device)
        stride = self.convs.total_stride
        h, mask = self.convs(_pad_time(x, stride), _pad_time(mask, stride))  # (B, C, T')
        return self.head(masked_mean(h, mask))  # (B, S)


# --------------------------------------------------------------------------------------------
# AdaIN decoder (shared by AdaINVC and VQVC) and the decoders' checks
# --------------------------------------------------------------------------------------------
class AdaINDecoder(nn.Module):
    """Content code + speaker embedding -> mel, with AdaIN in every block.

    Args:
        content_dim: Channels of the content code.
        n_mels: Output mel bins.
        channels: Hidden channels.
        speaker_dim: Size of the speaker embedding.
        n_blocks: Number of :class:`AdaINBlock` s.
        kernel_size: Odd kernel size.
        upsample: Per-block time upsampling factors (the encoder's strides, reversed).
        activation: Activation name.
        dropout: Dropout inside the blocks.
        postnet_layers: Convs of a residual :class:`Postnet` (0: none).
    """

    def __init__(
        self,
        *,
        content_dim: int,
        n_mels: int,
        channels: int,
        speaker_dim: int,
        n_blocks: int,
        kernel_size: int,
        upsample: Sequence[int],
        activation: str,
        dropout: float,
        postnet_layers: int = 0,
    ) -> None:
        super().__init__()
        self.conv_in = nn.Conv1d(content_dim, channels, kernel_size, padding=kernel_size // 2)
        self.blocks = nn.ModuleList(
            AdaINBlock(
                channels=channels,
                speaker_dim=speaker_dim,
                kernel_size=kernel_size,
                upsample=u,
                activation=activation,
                dropout=dropout,
            )
            for u in _strides(upsample, n_blocks, who="AdaINDecoder")
        )
        self.conv_out = nn.Conv1d(channels, n_mels, 1)
        self.postnet = (
            Postnet(
                n_mels=n_mels, channels=channels, n_layers=postnet_layers, kernel_size=kernel_size
            )
            if postnet_layers
            else None
        )

    def forward(self, z: Tensor, speaker: Tensor) -> Tensor:
        """``z`` ``(B, C, T')``, ``speaker`` ``(B, S)`` -> ``(B, n_mels, T' * prod(upsample))``."""
        h = self.conv_in(z)
        for block in self.blocks:
            h = block(h, speaker)
        mel = self.conv_out(h)
        return self.postnet(mel) if self.postnet is not None else mel


def _check_decode_inputs(
    z: Tensor, speaker: Tensor, content_dim: int, speaker_dim: int, who: str
) -> None:
    if z.dim() != 3 or z.shape[1] != content_dim:
        raise ValueError(
            f"{who}.decode: z must be (batch, {content_dim}, frames), got {tuple(z.shape)}"
        )
    if speaker.dim() != 2 or speaker.shape[1] != speaker_dim:
        raise ValueError(
            f"{who}.decode: speaker must be (batch, {speaker_dim}) or (1, {speaker_dim}), "
            f"got {tuple(speaker.shape)}"
        )
    if speaker.shape[0] not in (1, z.shape[0]):
        raise ValueError(
            f"{who}.decode: {speaker.shape[0]} speaker embeddings for a batch of {z.shape[0]} codes"
        )


def _crop(mel: Tensor, length: int | None) -> Tensor:
    if length is None:
        return mel
    if length > mel.shape[-1]:
        raise ValueError(
            f"decode: length {length} exceeds the {mel.shape[-1]} frames the code holds"
        )
    return mel[..., :length]
