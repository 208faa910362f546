"""VQVC (Wu & Lee 2020, arXiv 2005.07815): vector-quantised content codes.

The core's :class:`~seqae.core.VectorQuantizer` quantises the instance-normalised encoder output;
the speaker embedding is what the codes cannot explain, the time-mean of (continuous - quantised)
encoder output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from seqae.audio.blocks import (
    AdaINDecoder,
    ConvStack,
    _check_decode_inputs,
    _check_sizes,
    _crop,
    _pad_time,
    _strides,
    length_mask,
    masked_instance_norm,
    masked_mean,
)
from seqae.audio.features import FeatureConfig, FeatureNormalizer
from seqae.audio.vc_base import VCOutput, VoiceConversionModel, _feature_config
from seqae.core.base import BottleneckOutput
from seqae.core.nets import make_activation
from seqae.core.vq import VectorQuantizer

__all__ = ["VQVC"]


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
