"""The adversarial speaker classifier (Chou et al. 2018, arXiv 1804.02812): a speaker classifier
on any voice-conversion model's content code, trained against the content encoder.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqae.audio.blocks import _check_kernel, _positive_int, length_mask, masked_mean

__all__ = ["SpeakerAdversary"]


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
