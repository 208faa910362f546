"""AutoVC (Qian et al. 2019, arXiv 1905.05879): a narrow BiLSTM content bottleneck, downsampled
in time, conditioned on the speaker embedding on both sides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from seqae.audio.blocks import (
    ConvStack,
    Postnet,
    SpeakerEncoder,
    _check_decode_inputs,
    _check_sizes,
    _crop,
    _pad_time,
    length_mask,
)
from seqae.audio.features import FeatureConfig, FeatureNormalizer
from seqae.audio.vc_base import VCOutput, VoiceConversionModel, _feature_config
from seqae.core.base import BottleneckOutput
from seqae.core.identity import IdentityBottleneck

__all__ = ["AutoVC"]


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
