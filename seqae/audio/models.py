"""Voice-conversion models: speaker/content disentangled autoencoders on normalised log-mels.

Every model reads and writes *normalised* log-mels ``x`` of shape ``(B, n_mels, T)`` (see
:class:`~seqae.audio.features.FeatureNormalizer`, which each model carries as ``normalizer`` so
that its statistics travel with the weights) and keeps one interface:

    >>> model = AdaINVC()                                  # or VQVC(), AutoVC()
    >>> out = model(x)                                     # VCOutput(recon, content, speaker)
    >>> z = model.encode_content(x).z                      # (B, C, T') content code
    >>> s = model.encode_speaker(x, lengths)               # (B, S) speaker embedding
    >>> y = model.decode(z, s, length=x.shape[-1])         # (B, n_mels, T)
    >>> y = model.convert(source, [ref1, ref2])            # one-shot conversion, (n_mels, T)
    >>> model.save_pretrained("vc/"); same = load_vc_model("vc/")

The models:

- :class:`AdaINVC` (Chou et al. 2019, arXiv 1904.05742), the default: an instance-normalised
  content encoder feeding the core's :class:`~seqae.core.GaussianBottleneck`, a speaker encoder
  with global average pooling, and a decoder whose adaptive instance normalisation takes its scale
  and shift from the speaker embedding.
- :class:`VQVC` (Wu & Lee 2020, arXiv 2005.07815): the core's :class:`~seqae.core.VectorQuantizer`
  quantises the instance-normalised encoder output; the speaker embedding is what the codes cannot
  explain, the time-mean of (continuous - quantised) encoder output.
- :class:`AutoVC` (Qian et al. 2019, arXiv 1905.05879): a narrow BiLSTM bottleneck, downsampled in
  time, conditioned on the speaker embedding on both sides.
- :class:`SpeakerAdversary` (Chou et al. 2018, arXiv 1804.02812): a speaker classifier on any
  model's content code, trained against the content encoder.

Variable lengths: encoders that downsample in time pad their input internally to a multiple of
the total stride; ``decode(..., length=T)`` crops back, so ``forward`` and ``convert`` always
return the input's ``T`` frames. Encoders mask padded frames (``lengths``), so a speaker embedding
does not depend on how much padding a batch adds.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqae.audio.features import FeatureConfig, FeatureNormalizer
from seqae.core.base import BottleneckOutput
from seqae.core.gaussian import GaussianBottleneck
from seqae.core.identity import IdentityBottleneck
from seqae.core.nets import make_activation
from seqae.core.vq import VectorQuantizer

__all__ = [
    "VCOutput",
    "VoiceConversionModel",
    "SpeakerEncoder",
    "AdaINVC",
    "VQVC",
    "AutoVC",
    "SpeakerAdversary",
    "VC_MODELS",
    "load_vc_model",
    "length_mask",
    "masked_mean",
    "masked_instance_norm",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "FORMAT_VERSION",
    "save_pretrained_files",
    "read_saved_config",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1


class VCOutput(NamedTuple):
    """What a voice-conversion model's ``forward`` returns.

    Attributes:
        recon: ``(B, n_mels, T)`` reconstruction of the input (same ``T``).
        content: The content code ``z`` ``(B, C, T')`` with the bottleneck's own loss (KL, VQ
            commitment, or zero) and its diagnostics.
        speaker: ``(B, S)`` speaker embedding the decoder used.
    """

    recon: Tensor
    content: BottleneckOutput
    speaker: Tensor


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
# Shared model plumbing: config, convert, save/load
# --------------------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if isinstance(value, FeatureConfig):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _feature_config(value: FeatureConfig | Mapping[str, Any] | None, *, who: str) -> FeatureConfig:
    if value is None:
        return FeatureConfig()
    if isinstance(value, FeatureConfig):
        return value
    if isinstance(value, Mapping):
        return FeatureConfig.from_dict(value)
    raise TypeError(
        f"{who}: feature_config must be a FeatureConfig or a dict, got {type(value).__name__}"
    )


def save_pretrained_files(
    module: nn.Module, directory: str | Path, *, model_type: str, config: Mapping[str, Any]
) -> Path:
    """Write ``module``'s weights (``model.safetensors``) and ``config.json`` atomically.

    ``config.json`` holds ``{"model_type", "config", "features", "format"}``, ``features``
    being ``module.feature_config``. Shared by the voice-conversion models and the vocoder.
    """
    from seqae.training.checkpoint import atomic_write_json, save_safetensors_atomic

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_safetensors_atomic(tensors, directory / WEIGHTS_NAME, sync_dir=False)
    atomic_write_json(
        directory / CONFIG_NAME,
        {
            "model_type": model_type,
            "config": dict(config),
            "features": module.feature_config.to_dict(),
            "format": FORMAT_VERSION,
        },
    )
    return directory


def read_saved_config(directory: Path, *, what: str, holder: str) -> dict[str, Any]:
    """The parsed ``config.json`` of a directory written by :func:`save_pretrained_files`.

    Args:
        directory: The saved directory.
        what: Its noun in the "no such ... directory" message ("model", "vocoder").
        holder: What a valid directory is, in messages ("voice-conversion model").

    Raises:
        FileNotFoundError: the directory or one of its two files is missing.
        ValueError: ``config.json`` is not JSON, holds no ``"config"`` dict, or was written by a
            newer format.
    """
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such {what} directory")
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: a saved {holder} holds {CONFIG_NAME} and {WEIGHTS_NAME}"
            )
    try:
        saved = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{config_path} is not valid JSON ({exc}); the file is corrupt") from exc
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        raise ValueError(f'{config_path} is not a {holder} config (no "config" dict)')
    fmt = saved.get("format", FORMAT_VERSION)
    if not isinstance(fmt, int) or fmt > FORMAT_VERSION:
        raise ValueError(
            f"{directory} was saved in format {fmt!r}; this seqae reads format {FORMAT_VERSION}"
        )
    return saved


class VoiceConversionModel(nn.Module):
    """What every voice-conversion model shares: config round trip, conversion, saving.

    Subclasses define ``model_type`` and ``encode_content``, ``encode_speaker``, ``decode``,
    ``forward``, and call :meth:`_record_config` with their constructor's ``locals()``.
    """

    model_type: ClassVar[str] = ""
    feature_config: FeatureConfig
    normalizer: FeatureNormalizer
    speaker_dim: int
    content_dim: int
    config: dict[str, Any]

    def _record_config(self, local_vars: Mapping[str, Any]) -> None:
        params = inspect.signature(type(self).__init__).parameters
        config = {k: _jsonable(local_vars[k]) for k in params if k != "self"}
        config["feature_config"] = self.feature_config.to_dict()
        self.config = config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> VoiceConversionModel:
        """Build from a dict of constructor keyword arguments (as :attr:`config` holds them).

        Raises ``ValueError`` naming unknown keys and listing the valid ones.
        """
        if not isinstance(config, Mapping):
            raise TypeError(
                f"{cls.__name__}.from_config: expected a dict, got {type(config).__name__}"
            )
        valid = [k for k in inspect.signature(cls.__init__).parameters if k != "self"]
        unknown = sorted(set(config) - set(valid))
        if unknown:
            raise ValueError(
                f"{cls.__name__}: unknown config key(s) {unknown}; valid keys: {', '.join(valid)}"
            )
        return cls(**dict(config))

    @property
    def n_mels(self) -> int:
        """Mel bins of the features the model reads and writes."""
        return self.feature_config.n_mels

    def _check_input(self, x: Tensor) -> None:
        _check_mels(x, self.n_mels, who=type(self).__name__)

    # -- one-shot conversion -------------------------------------------------------------------
    def _as_single(self, mel: Tensor, what: str) -> Tensor:
        if not isinstance(mel, Tensor):
            raise TypeError(f"convert: {what} must be a torch.Tensor, got {type(mel).__name__}")
        if mel.dim() == 3 and mel.shape[0] == 1:
            mel = mel[0]
        if mel.dim() != 2 or mel.shape[0] != self.n_mels:
            raise ValueError(
                f"convert: {what} must be a normalised log-mel of shape ({self.n_mels}, frames) "
                f"or (1, {self.n_mels}, frames), got {tuple(mel.shape)}"
            )
        return mel

    @torch.no_grad()
    def speaker_embedding(self, references: Sequence[Tensor]) -> Tensor:
        """Mean of the per-reference speaker embeddings: ``[(n_mels, T_i), ...] -> (1, S)``."""
        if isinstance(references, Tensor) or len(references) == 0:
            raise ValueError(
                "convert: references must be a non-empty list of (n_mels, frames) mels"
            )
        device = next(self.parameters()).device
        embs = [
            self.encode_speaker(self._as_single(r, f"references[{i}]").to(device)[None])
            for i, r in enumerate(references)
        ]
        return torch.cat(embs).mean(0, keepdim=True)  # (1, S)

    @torch.no_grad()
    def convert(self, source: Tensor, references: Sequence[Tensor]) -> Tensor:
        """Say ``source``'s content in the voice of ``references`` (one or a few utterances).

        Does not change train/eval mode: call ``model.eval()`` first for deterministic output.

        Args:
            source: Normalised log-mel ``(n_mels, T)`` or ``(1, n_mels, T)``.
            references: Normalised log-mels ``(n_mels, T_i)`` of the target speaker; the speaker
                embedding is the mean of their embeddings.

        Returns:
            ``(n_mels, T)`` normalised log-mel.
        """
        src = self._as_single(source, "source")
        device = next(self.parameters()).device
        speaker = self.speaker_embedding(references)  # (1, S)
        z = self.encode_content(src.to(device)[None]).z
        return self.decode(z, speaker, length=src.shape[-1])[0]

    # -- saving and loading --------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``, each atomically.

        ``config.json`` holds ``{"model_type", "config", "features", "format"}``; the weights
        include the feature normaliser's statistics.
        """
        return save_pretrained_files(
            self, directory, model_type=self.model_type, config=self.config
        )


def load_vc_model(directory: str | Path, *, map_location: str | torch.device = "cpu") -> nn.Module:
    """Load a model saved by ``save_pretrained``, whichever of :data:`VC_MODELS` it is.

    Raises ``FileNotFoundError`` for a missing directory or file, ``ValueError`` for corrupt
    files, an unknown ``model_type``, a newer format, or weights of another model (naming the
    missing, unexpected and mis-shaped tensors). The feature settings are the caller's to compare
    (``check_same_features(model.feature_config, ...)``).
    """
    from seqae.core.model import load_weights_strict

    directory = Path(directory)
    saved = read_saved_config(directory, what="model", holder="voice-conversion model")
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    model_type = saved.get("model_type")
    if model_type not in VC_MODELS:
        raise ValueError(
            f"{config_path}: unknown model_type {model_type!r}; expected one of {', '.join(VC_MODELS)}"
        )
    config = dict(saved["config"])
    if "features" in saved:
        config.setdefault("feature_config", saved["features"])
        if FeatureConfig.from_dict(config["feature_config"]) != FeatureConfig.from_dict(
            saved["features"]
        ):
            raise ValueError(f'{config_path}: "features" disagrees with config["feature_config"]')
    try:
        model = VC_MODELS[model_type].from_config(config)
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(
            f"{config_path}: cannot build a {model_type} model from it: {exc}"
        ) from exc
    load_weights_strict(model, weights_path, map_location=map_location)
    return model.to(map_location)


# --------------------------------------------------------------------------------------------
# AdaIN-VC
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


class AdaINVC(VoiceConversionModel):
    """AdaIN-VC (Chou et al. 2019, arXiv 1904.05742): one-shot VC by instance normalisation.

    Content encoder: the per-bin time mean of the input is removed (so the code is exactly
    invariant to a per-mel-bin offset, e.g. a speaker's average spectral envelope), then residual
    conv blocks, each followed by instance normalisation without affine parameters (removing
    per-utterance channel statistics), optional stride-2 downsampling, and a 1x1 conv to the mean
    and log-variance of the core's :class:`~seqae.core.GaussianBottleneck` (KL to N(0, I), nats per
    utterance summed over frames; the recipe weights it). Speaker encoder:
    :class:`SpeakerEncoder`. Decoder: :class:`AdaINDecoder`.

    Args:
        feature_config: Feature settings the model is trained on (``n_mels`` from it).
        channels: Conv channels of content encoder and decoder.
        content_dim: Channels of the content code.
        speaker_dim: Size of the speaker embedding.
        n_blocks: Residual blocks of the content encoder and of the decoder.
        kernel_size: Odd conv kernel size.
        strides: Per-block time strides of the content encoder (the decoder upsamples by the same
            factors); ``None``: no downsampling.
        speaker_channels: Conv channels of the speaker encoder.
        speaker_blocks: Residual blocks of the speaker encoder.
        speaker_strides: Per-block strides of the speaker encoder; ``None``: none.
        dropout: Dropout inside the conv blocks.
        activation: Activation name.
        postnet_layers: Convs of a residual postnet after the decoder (0: none).
    """

    model_type: ClassVar[str] = "adain_vc"

    def __init__(
        self,
        *,
        feature_config: FeatureConfig | Mapping[str, Any] | None = None,
        channels: int = 192,
        content_dim: int = 32,
        speaker_dim: int = 128,
        n_blocks: int = 4,
        kernel_size: int = 5,
        strides: Sequence[int] | None = (1, 2, 1, 1),
        speaker_channels: int = 128,
        speaker_blocks: int = 3,
        speaker_strides: Sequence[int] | None = (1, 2, 2),
        dropout: float = 0.0,
        activation: str = "leaky_relu",
        postnet_layers: int = 0,
    ) -> None:
        super().__init__()
        who = "AdaINVC"
        self.feature_config = _feature_config(feature_config, who=who)
        _check_sizes(
            who,
            kernel_size=kernel_size,
            dropout=dropout,
            postnet_layers=postnet_layers,
            channels=channels,
            content_dim=content_dim,
            speaker_dim=speaker_dim,
            n_blocks=n_blocks,
        )
        strides = _strides(strides, n_blocks, who=who)
        self._record_config(locals())
        n_mels = self.feature_config.n_mels
        self.speaker_dim, self.content_dim = speaker_dim, content_dim
        self.normalizer = FeatureNormalizer(n_mels)
        self.content_encoder = ConvStack(
            in_channels=n_mels,
            channels=channels,
            n_blocks=n_blocks,
            kernel_size=kernel_size,
            strides=strides,
            norm="instance",
            activation=activation,
            dropout=dropout,
        )
        self.content_out = nn.Conv1d(channels, 2 * content_dim, 1)  # mu, logvar
        self.bottleneck = GaussianBottleneck(latent_dim=content_dim, feature_dim=1)
        self.speaker_encoder = SpeakerEncoder(
            n_mels=n_mels,
            channels=speaker_channels,
            speaker_dim=speaker_dim,
            n_blocks=speaker_blocks,
            kernel_size=kernel_size,
            strides=speaker_strides,
            activation=activation,
            dropout=dropout,
        )
        self.decoder = AdaINDecoder(
            content_dim=content_dim,
            n_mels=n_mels,
            channels=channels,
            speaker_dim=speaker_dim,
            n_blocks=n_blocks,
            kernel_size=kernel_size,
            upsample=strides[::-1],
            activation=activation,
            dropout=dropout,
            postnet_layers=postnet_layers,
        )

    @property
    def total_stride(self) -> int:
        """Frames of input per content-code frame."""
        return self.content_encoder.total_stride

    def encode_content(self, x: Tensor, lengths: Tensor | None = None) -> BottleneckOutput:
        """``(B, n_mels, T)`` -> code ``z`` ``(B, content_dim, ceil(T / total_stride))`` + KL.

        Training draws ``z`` from the posterior; eval returns its mean. With ``lengths``, padded
        frames are masked out of the normalisation statistics (the KL still covers every frame).
        """
        self._check_input(x)
        mask = length_mask(lengths, x.shape[0], x.shape[-1], x.device)
        x = (x - masked_mean(x, mask)[..., None]) * mask  # per-bin offset removed
        s = self.total_stride
        h, _ = self.content_encoder(_pad_time(x, s), _pad_time(mask, s))  # (B, C, T')
        return self.bottleneck(self.content_out(h))

    def encode_speaker(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``(B, n_mels, T)``, ``lengths`` ``(B,)`` -> speaker embedding ``(B, speaker_dim)``."""
        self._check_input(x)
        return self.speaker_encoder(x, lengths)

    def decode(self, z: Tensor, speaker: Tensor, *, length: int | None = None) -> Tensor:
        """``z`` ``(B, content_dim, T')`` and ``speaker`` ``(B or 1, S)`` -> ``(B, n_mels, T)``.

        ``T = T' * total_stride`` cropped to ``length`` when given (the encoded input's frames).
        """
        _check_decode_inputs(z, speaker, self.content_dim, self.speaker_dim, "AdaINVC")
        speaker = speaker.expand(z.shape[0], -1)
        return _crop(self.decoder(z, speaker), length)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> VCOutput:
        """Self-reconstruction: content and speaker both from ``x``."""
        content = self.encode_content(x, lengths)
        speaker = self.encode_speaker(x, lengths)
        return VCOutput(self.decode(content.z, speaker, length=x.shape[-1]), content, speaker)


# --------------------------------------------------------------------------------------------
# VQVC
# --------------------------------------------------------------------------------------------
class VQVC(VoiceConversionModel):
    """VQVC (Wu & Lee 2020; VQVC+, arXiv 2005.07815): content as vector-quantised codes.

    Encoder: residual conv blocks (no normalisation inside, so utterance statistics survive to
    its output ``h``). Content: ``h`` instance-normalised over time, then quantised frame by frame
    by the core's :class:`~seqae.core.VectorQuantizer` (straight-through; EMA codebook, optional
    k-means initialisation and dead-code restarts). Speaker: what the codes cannot explain, the
    time-mean of ``h - sg[q]`` through a small MLP. Decoder: :class:`AdaINDecoder`.

    Args:
        feature_config: Feature settings (``n_mels`` from it).
        channels: Conv channels of encoder and decoder.
        content_dim: Size of each code vector.
        codebook_size: Number of codes.
        speaker_dim: Size of the speaker embedding.
        n_blocks: Residual blocks of encoder and decoder.
        kernel_size: Odd conv kernel size.
        strides: Per-block time strides of the encoder; ``None``: none.
        dropout: Dropout inside the conv blocks.
        activation: Activation name.
        postnet_layers: Convs of a residual postnet (0: none).
        commitment_weight: VQ commitment weight (beta).
        ema: Learn the codebook by exponential moving averages.
        decay: EMA decay.
        kmeans_init: Initialise the codebook by k-means on the first training batch.
        dead_code_threshold: Restart codes whose EMA usage falls below this (0: never).
    """

    model_type: ClassVar[str] = "vq_vc"

    def __init__(
        self,
        *,
        feature_config: FeatureConfig | Mapping[str, Any] | None = None,
        channels: int = 192,
        content_dim: int = 64,
        codebook_size: int = 128,
        speaker_dim: int = 128,
        n_blocks: int = 4,
        kernel_size: int = 5,
        strides: Sequence[int] | None = (1, 2, 1, 1),
        dropout: float = 0.0,
        activation: str = "leaky_relu",
        postnet_layers: int = 0,
        commitment_weight: float = 0.25,
        ema: bool = True,
        decay: float = 0.99,
        kmeans_init: bool = True,
        dead_code_threshold: float = 1.0,
    ) -> None:
        super().__init__()
        who = "VQVC"
        self.feature_config = _feature_config(feature_config, who=who)
        _check_sizes(
            who,
            kernel_size=kernel_size,
            dropout=dropout,
            postnet_layers=postnet_layers,
            channels=channels,
            content_dim=content_dim,
            codebook_size=codebook_size,
            speaker_dim=speaker_dim,
            n_blocks=n_blocks,
        )
        strides = _strides(strides, n_blocks, who=who)
        self._record_config(locals())
        n_mels = self.feature_config.n_mels
        self.speaker_dim, self.content_dim = speaker_dim, content_dim
        self.normalizer = FeatureNormalizer(n_mels)
        self.encoder = ConvStack(
            in_channels=n_mels,
            channels=channels,
            n_blocks=n_blocks,
            kernel_size=kernel_size,
            strides=strides,
            norm=None,
            activation=activation,
            dropout=dropout,
        )
        self.encoder_out = nn.Conv1d(channels, content_dim, 1)
        self.vq = VectorQuantizer(
            dim=content_dim,
            codebook_size=codebook_size,
            commitment_weight=commitment_weight,
            ema=ema,
            decay=decay,
            kmeans_init=kmeans_init,
            dead_code_threshold=dead_code_threshold,
            feature_dim=1,
        )
        self.speaker_head = nn.Sequential(
            nn.Linear(content_dim, channels),
            make_activation(activation),
            nn.Linear(channels, speaker_dim),
        )
        self.decoder = AdaINDecoder(
            content_dim=content_dim,
            n_mels=n_mels,
            channels=channels,
            speaker_dim=speaker_dim,
            n_blocks=n_blocks,
            kernel_size=kernel_size,
            upsample=strides[::-1],
            activation=activation,
            dropout=dropout,
            postnet_layers=postnet_layers,
        )

    @property
    def total_stride(self) -> int:
        """Frames of input per code frame."""
        return self.encoder.total_stride

    def _encode(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """``x`` -> continuous ``h`` ``(B, D, T')``, its instance-normalised ``hn``, code mask."""
        self._check_input(x)
        mask = length_mask(lengths, x.shape[0], x.shape[-1], x.device)
        s = self.total_stride
        h, mask = self.encoder(_pad_time(x, s), _pad_time(mask, s))
        h = self.encoder_out(h) * mask  # (B, D, T')
        return h, masked_instance_norm(h, mask), mask

    def _speaker_from(self, h: Tensor, q: Tensor, mask: Tensor) -> Tensor:
        """What the codes cannot explain: ``MLP(mean_t(h - sg[q]))`` -> ``(B, S)``."""
        return self.speaker_head(masked_mean(h - q.detach(), mask))

    def encode_content(self, x: Tensor, lengths: Tensor | None = None) -> BottleneckOutput:
        """``(B, n_mels, T)`` -> quantised code ``(B, content_dim, ceil(T / total_stride))``.

        In training mode this updates the codebook (EMA), as any VQ forward does.
        """
        _, hn, _ = self._encode(x, lengths)
        return self.vq(hn)

    def encode_speaker(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``(B, n_mels, T)``, ``lengths`` ``(B,)`` -> ``(B, speaker_dim)``; the codebook is only read."""
        h, hn, mask = self._encode(x, lengths)
        with torch.no_grad():
            flat = hn.detach().movedim(1, -1)  # (B, T', D)
            embed = self.vq.embed.detach()  # (K, D)
            scores = 2.0 * flat @ embed.t() - embed.pow(2).sum(1)  # argmax = nearest code
            q = self.vq.lookup(scores.argmax(-1))  # (B, D, T')
        return self._speaker_from(h, q, mask)

    def decode(self, z: Tensor, speaker: Tensor, *, length: int | None = None) -> Tensor:
        """``z`` ``(B, content_dim, T')``, ``speaker`` ``(B or 1, S)`` -> ``(B, n_mels, T)``
        (``T = T' * total_stride``, cropped to ``length`` when given)."""
        _check_decode_inputs(z, speaker, self.content_dim, self.speaker_dim, "VQVC")
        return _crop(self.decoder(z, speaker.expand(z.shape[0], -1)), length)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> VCOutput:
        """Self-reconstruction; encodes and quantises once."""
        h, hn, mask = self._encode(x, lengths)
        content = self.vq(hn)
        speaker = self._speaker_from(h, content.z, mask)
        return VCOutput(self.decode(content.z, speaker, length=x.shape[-1]), content, speaker)


# --------------------------------------------------------------------------------------------
# AutoVC
# --------------------------------------------------------------------------------------------
class AutoVC(VoiceConversionModel):
    """AutoVC (Qian et al. 2019, arXiv 1905.05879): a carefully narrow content bottleneck.

    Content encoder: convs on ``[mel; speaker embedding broadcast over time]``, a 2-layer BiLSTM
    of ``neck_dim`` units per direction, then downsampling by ``freq``: the forward output at
    frames ``k*freq + freq - 1`` and the backward output at frames ``k*freq`` (the paper's
    choice), giving ``z`` ``(B, 2 * neck_dim, T / freq)`` through an
    :class:`~seqae.core.IdentityBottleneck`. Decoder: ``z`` repeated ``freq`` times, concatenated
    with the speaker embedding, convs, an LSTM, a linear map to the mel, and a residual
    :class:`Postnet`. The speaker encoder (:class:`SpeakerEncoder`) is trained jointly; it could
    equally be loaded pretrained, as in the paper. The paper's content-code loss
    ``|E(recon) - z|`` is the recipe's to add (``encode_content(out.recon)``).

    Args:
        feature_config: Feature settings (``n_mels`` from it).
        channels: Conv channels of encoder and decoder.
        neck_dim: BiLSTM units per direction at the bottleneck (the code has ``2 * neck_dim``).
        freq: Time downsampling factor of the code.
        speaker_dim: Size of the speaker embedding.
        n_blocks: Residual conv blocks in encoder and decoder.
        kernel_size: Odd conv kernel size.
        lstm_hidden: Units of the decoder LSTM.
        lstm_layers: Layers of the decoder LSTM.
        postnet_layers: Convs of the postnet (0: none).
        speaker_channels: Conv channels of the speaker encoder.
        speaker_blocks: Residual blocks of the speaker encoder.
        speaker_strides: Per-block strides of the speaker encoder; ``None``: none.
        dropout: Dropout inside the conv blocks.
        activation: Activation name.
    """

    model_type: ClassVar[str] = "autovc"

    def __init__(
        self,
        *,
        feature_config: FeatureConfig | Mapping[str, Any] | None = None,
        channels: int = 256,
        neck_dim: int = 16,
        freq: int = 8,
        speaker_dim: int = 128,
        n_blocks: int = 2,
        kernel_size: int = 5,
        lstm_hidden: int = 256,
        lstm_layers: int = 1,
        postnet_layers: int = 3,
        speaker_channels: int = 128,
        speaker_blocks: int = 3,
        speaker_strides: Sequence[int] | None = (1, 2, 2),
        dropout: float = 0.0,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        who = "AutoVC"
        self.feature_config = _feature_config(feature_config, who=who)
        _check_sizes(
            who,
            kernel_size=kernel_size,
            dropout=dropout,
            postnet_layers=postnet_layers,
            channels=channels,
            neck_dim=neck_dim,
            freq=freq,
            speaker_dim=speaker_dim,
            n_blocks=n_blocks,
            lstm_hidden=lstm_hidden,
            lstm_layers=lstm_layers,
        )
        self._record_config(locals())
        n_mels = self.feature_config.n_mels
        self.freq = freq
        self.speaker_dim, self.content_dim = speaker_dim, 2 * neck_dim
        self.normalizer = FeatureNormalizer(n_mels)
        self.speaker_encoder = SpeakerEncoder(
            n_mels=n_mels,
            channels=speaker_channels,
            speaker_dim=speaker_dim,
            n_blocks=speaker_blocks,
            kernel_size=kernel_size,
            strides=speaker_strides,
            activation=activation,
            dropout=dropout,
        )
        self.content_convs = ConvStack(
            in_channels=n_mels + speaker_dim,
            channels=channels,
            n_blocks=n_blocks,
            kernel_size=kernel_size,
            norm="batch",
            activation=activation,
            dropout=dropout,
        )
        self.content_lstm = nn.LSTM(
            channels, neck_dim, num_layers=2, batch_first=True, bidirectional=True
        )
        self.bottleneck = IdentityBottleneck(dim=2 * neck_dim, feature_dim=1)
        self.decoder_convs = ConvStack(
            in_channels=2 * neck_dim + speaker_dim,
            channels=channels,
            n_blocks=n_blocks,
            kernel_size=kernel_size,
            norm="batch",
            activation=activation,
            dropout=dropout,
        )
        self.decoder_lstm = nn.LSTM(channels, lstm_hidden, num_layers=lstm_layers, batch_first=True)
        self.decoder_out = nn.Linear(lstm_hidden, n_mels)
        self.postnet = (
            Postnet(
                n_mels=n_mels, channels=channels, n_layers=postnet_layers, kernel_size=kernel_size
            )
            if postnet_layers
            else None
        )

    @property
    def total_stride(self) -> int:
        """Frames of input per code frame (``freq``)."""
        return self.freq

    def encode_speaker(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``(B, n_mels, T)``, ``lengths`` ``(B,)`` -> speaker embedding ``(B, speaker_dim)``."""
        self._check_input(x)
        return self.speaker_encoder(x, lengths)

    def encode_content(
        self, x: Tensor, lengths: Tensor | None = None, *, speaker: Tensor | None = None
    ) -> BottleneckOutput:
        """``(B, n_mels, T)`` -> ``z`` ``(B, 2 * neck_dim, ceil(T / freq))``.

        The encoder is conditioned on the source speaker's embedding: ``speaker`` ``(B, S)``, by
        default :meth:`encode_speaker` of ``x`` itself.
        """
        self._check_input(x)
        if speaker is None:
            speaker = self.encode_speaker(x, lengths)
        b, _, t = x.shape
        mask = length_mask(lengths, b, t, x.device)
        x = _pad_time(x, self.freq)
        mask = _pad_time(mask, self.freq)
        inp = torch.cat([x, speaker[..., None].expand(b, -1, x.shape[-1])], dim=1)
        h, _ = self.content_convs(inp, mask)  # (B, C, Tp)
        out, _ = self.content_lstm(h.transpose(1, 2))  # (B, Tp, 2d)
        d, f = out.shape[-1] // 2, self.freq
        forward_part = out[:, f - 1 :: f, :d]  # frames k*f + f - 1
        backward_part = out[:, ::f, d:]  # frames k*f
        z = torch.cat([forward_part, backward_part], dim=-1).transpose(1, 2)  # (B, 2d, Tp / f)
        return self.bottleneck(z.contiguous())

    def _decode_pre(self, z: Tensor, speaker: Tensor) -> Tensor:
        b = z.shape[0]
        up = z.repeat_interleave(self.freq, dim=-1)  # (B, 2d, T)
        inp = torch.cat([up, speaker.expand(b, -1)[..., None].expand(-1, -1, up.shape[-1])], dim=1)
        mask = torch.ones(b, 1, up.shape[-1], device=z.device, dtype=z.dtype)
        h, _ = self.decoder_convs(inp, mask)  # (B, C, T)
        out, _ = self.decoder_lstm(h.transpose(1, 2))  # (B, T, H)
        return self.decoder_out(out).transpose(1, 2)  # (B, n_mels, T)

    def decode(self, z: Tensor, speaker: Tensor, *, length: int | None = None) -> Tensor:
        """``z`` ``(B, 2 * neck_dim, T')``, ``speaker`` ``(B or 1, S)`` -> ``(B, n_mels, T)``
        (after the postnet; ``T = T' * freq`` cropped to ``length`` when given)."""
        _check_decode_inputs(z, speaker, self.content_dim, self.speaker_dim, "AutoVC")
        mel = self._decode_pre(z, speaker)
        if self.postnet is not None:
            mel = self.postnet(mel)
        return _crop(mel, length)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> VCOutput:
        """Self-reconstruction (after the postnet); the speaker embedding is computed once."""
        speaker = self.encode_speaker(x, lengths)
        content = self.encode_content(x, lengths, speaker=speaker)
        return VCOutput(self.decode(content.z, speaker, length=x.shape[-1]), content, speaker)


# --------------------------------------------------------------------------------------------
# Adversarial speaker classifier
# --------------------------------------------------------------------------------------------
class SpeakerAdversary(nn.Module):
    """Speaker classifier on a content code, trained against the content encoder (arXiv 1804.02812).

    A 1-D conv over the code frames, masked average pooling over time, and an MLP to speaker
    logits. :meth:`loss` gives the classifier's own loss (on the detached code) and the encoder's
    adversarial term.

    Args:
        content_dim: Channels of the content code.
        num_speakers: Number of training speakers.
        hidden: Hidden width.
        kernel_size: Odd kernel size of the conv over code frames.
    """

    def __init__(
        self, *, content_dim: int, num_speakers: int, hidden: int = 256, kernel_size: int = 3
    ) -> None:
        super().__init__()
        who = "SpeakerAdversary"
        for name, value in (
            ("content_dim", content_dim),
            ("num_speakers", num_speakers),
            ("hidden", hidden),
        ):
            _positive_int(name, value, who=who)
        _check_kernel(kernel_size, who=who)
        self.content_dim, self.num_speakers = content_dim, num_speakers
        self.conv = nn.Conv1d(content_dim, hidden, kernel_size, padding=kernel_size // 2)
        self.head = nn.Sequential(
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, num_speakers),
        )

    def forward(self, z_content: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``z_content`` ``(B, C, T')``, ``lengths`` ``(B,)`` code frames -> logits ``(B, num_speakers)``."""
        if z_content.dim() != 3 or z_content.shape[1] != self.content_dim:
            raise ValueError(
                f"SpeakerAdversary: expected a content code (batch, {self.content_dim}, frames), "
                f"got {tuple(z_content.shape)}"
            )
        mask = length_mask(lengths, z_content.shape[0], z_content.shape[-1], z_content.device)
        h = F.leaky_relu(self.conv(z_content * mask), 0.2)
        return self.head(masked_mean(h, mask))

    def loss(
        self,
        z_content: Tensor,
        speaker_ids: Tensor,
        *,
        weight: float,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The two adversarial terms.

        Args:
            z_content: ``(B, C, T')`` content code (with its graph to the encoder).
            speaker_ids: ``(B,)`` int speaker labels.
            weight: Weight of the encoder's term.
            lengths: ``(B,)`` valid code frames, if padded.

        Returns:
            ``(classifier_loss, encoder_loss)``. ``classifier_loss``: cross-entropy of the
            classifier on the *detached* code (trains only the adversary). ``encoder_loss``:
            ``weight *`` (cross-entropy against the uniform distribution over speakers - log K),
            computed with the classifier's weights frozen, so its gradient reaches only the
            content encoder, through ``z_content``; it is 0 when the classifier cannot tell the
            speakers apart. This target is more stable than the paper's ``-CE`` (which rewards
            confidently wrong predictions and is unbounded below).
        """
        if speaker_ids.shape != (z_content.shape[0],):
            raise ValueError(
                f"SpeakerAdversary.loss: speaker_ids must be ({z_content.shape[0]},), got {tuple(speaker_ids.shape)}"
            )
        classifier_loss = F.cross_entropy(self(z_content.detach(), lengths), speaker_ids)
        frozen = {name: p.detach() for name, p in self.named_parameters()}
        logits = torch.func.functional_call(self, frozen, (z_content, lengths))
        uniform_ce = -F.log_softmax(logits, dim=-1).mean(-1).mean()
        encoder_loss = weight * (uniform_ce - math.log(self.num_speakers))
        return classifier_loss, encoder_loss


VC_MODELS: dict[str, type[VoiceConversionModel]] = {
    AdaINVC.model_type: AdaINVC,
    VQVC.model_type: VQVC,
    AutoVC.model_type: AutoVC,
}
