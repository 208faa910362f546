"""AdaIN-VC (Chou et al. 2019, arXiv 1904.05742), the default voice-conversion model.

An instance-normalised content encoder feeds the core's :class:`~seqae.core.GaussianBottleneck`,
a speaker encoder with global average pooling gives the speaker embedding, and a decoder whose
adaptive instance normalisation takes its scale and shift from that embedding makes the mel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

from seqae.audio.blocks import (
    AdaINDecoder,
    ConvStack,
    SpeakerEncoder,
    _check_decode_inputs,
    _check_sizes,
    _crop,
    _pad_time,
    _strides,
    length_mask,
    masked_mean,
)
from seqae.audio.features import FeatureConfig, FeatureNormalizer
from seqae.audio.vc_base import VCOutput, VoiceConversionModel, _feature_config
from seqae.core.base import BottleneckOutput
from seqae.core.gaussian import GaussianBottleneck

__all__ = ["AdaINVC"]


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
