"""Nearest-neighbour mining in input space, without labels (SCAN, Van Gansbeke et al. 2020,
arXiv 2005.12320): pairs of similar examples for consistency objectives."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["nearest_neighbors"]


def nearest_neighbors(x: Tensor, k: int, *, among: Tensor | None = None) -> Tensor:
    """Indices ``(N, k)`` of the ``k`` nearest rows of ``among`` to each row of ``x`` (Euclidean).

    Args:
        x: Queries ``(N, D)``.
        k: Neighbours per query.
        among: Candidates ``(M, D)``; by default ``x`` itself, each row excluded from its own
            neighbours.
    """
    ref = x if among is None else among
    limit = ref.shape[0] - (1 if among is None else 0)
    if not 1 <= k <= limit:
        raise ValueError(f"k must be in 1..{limit} for {ref.shape[0]} candidates, got {k}")
    dist = torch.cdist(x, ref)
    if among is None:
        dist.fill_diagonal_(float("inf"))
    return dist.topk(k, largest=False).indices
