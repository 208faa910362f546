"""A speaker-verification loss on any voice-conversion model's speaker embeddings: the
generalized end-to-end (GE2E) softmax loss of Wan et al. 2018 (arXiv 1710.10467), for batches
in which each item brings two utterances of its speaker.

A reconstruction loss alone lets the speaker encoder keep only what the decoder needs to tell
the training voices apart; a new voice can then land anywhere. GE2E asks every embedding to be
closer to its own speaker's centroid than to any other speaker's, which orders the speaker space
by who is speaking, the property a one-shot converter needs for voices it never heard.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["GE2ELoss"]


class GE2ELoss(nn.Module):
    """GE2E softmax loss with two utterances per item (arXiv 1710.10467, section 2.1).

    Item ``i`` of a batch holds two embeddings of one speaker, ``a_i`` and ``b_i`` (in the voice
    conversion recipe: the speaker encoder on the crop being rebuilt and on the reference crop).
    Each item's centroid is ``c_i = (a_i + b_i) / 2``. For the embedding ``a_i`` the similarity to
    its own speaker uses the centroid without ``a_i`` itself (with two utterances: ``b_i``), as
    the paper prescribes, and the similarity to item ``j``'s speaker uses ``c_j``; the scaled
    cosines ``w cos + b`` (``w > 0`` and ``b`` learned) are the logits of a softmax over the
    items, whose target is the item itself. Items with the same speaker label are not negatives
    of one another (they are left out of each other's softmax). The loss is the mean over both
    embeddings of every item.

    Args:
        init_scale: Initial ``w`` (the paper: 10).
        init_bias: Initial ``b`` (the paper: -5).
    """

    def __init__(self, *, init_scale: float = 10.0, init_bias: float = -5.0) -> None:
        super().__init__()
        if not init_scale > 0:
            raise ValueError(f"GE2ELoss: init_scale must be positive, got {init_scale}")
        self.scale = nn.Parameter(torch.tensor(float(init_scale)))
        self.bias = nn.Parameter(torch.tensor(float(init_bias)))

    def forward(self, a: Tensor, b: Tensor, speakers: Tensor) -> Tensor:
        """The loss (a scalar, nats).

        Args:
            a: ``(B, D)`` first embedding of each item.
            b: ``(B, D)`` second embedding of each item, same speaker as ``a``.
            speakers: ``(B,)`` speaker labels; items sharing a label are not negatives.
        """
        if a.dim() != 2 or a.shape != b.shape:
            raise ValueError(
                f"GE2ELoss: a and b must be (B, D) of one shape, got {tuple(a.shape)} and "
                f"{tuple(b.shape)}"
            )
        if speakers.shape != a.shape[:1]:
            raise ValueError(
                f"GE2ELoss: speakers must be ({a.shape[0]},), got {tuple(speakers.shape)}"
            )
        if a.shape[0] < 2:
            raise ValueError("GE2ELoss: a batch needs at least two items")
        a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
        centroids = F.normalize(a + b, dim=-1)  # (B, D); the direction of (a + b) / 2
        n = a.shape[0]
        eye = torch.eye(n, dtype=torch.bool, device=a.device)
        same = (speakers[:, None] == speakers[None, :]) & ~eye  # not negatives
        target = torch.arange(n, device=a.device)
        scale = self.scale.clamp_min(1e-6)  # the paper keeps w > 0
        loss = a.new_zeros(())
        for x, other in ((a, b), (b, a)):
            cos = x @ centroids.T  # (B, B): to every item's centroid
            cos = torch.where(eye, (x * other).sum(-1).diag_embed(), cos)  # own: without x
            logits = (scale * cos + self.bias).masked_fill(same, float("-inf"))
            loss = loss + F.cross_entropy(logits, target) / 2
        return loss
