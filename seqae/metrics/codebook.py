"""How a discrete bottleneck uses its codebook.

- :func:`code_histogram`: counts of each code, overall or per position.
- :func:`codebook_perplexity`: ``exp(H)`` of the empirical code distribution, the effective
  number of codes in use (1 when one code is used, ``K`` when all ``K`` are used equally;
  reported for VQ-VAEs since van den Oord et al. 2017, arXiv 1711.00937).
- :func:`codebook_usage`: fraction of codes used at least once, and the dead codes.
- :func:`perplexity_from_counts`: the same perplexity from accumulated counts, for statistics
  over a whole dataset (sum :func:`code_histogram` over batches, then call this).

``indices`` are integer codes in ``0..K-1`` of any shape; axis 0 is the batch, any further
axes are positions (time steps, map locations, codebook heads). Accepts numpy arrays or torch
tensors; scalar results are Python floats/ints, arrays are CPU tensors.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "CodebookUsage",
    "code_histogram",
    "codebook_perplexity",
    "codebook_usage",
    "perplexity_from_counts",
]


def _as_codes(indices: Any, codebook_size: int) -> Tensor:
    if not isinstance(codebook_size, int) or codebook_size < 1:
        raise ValueError(f"codebook_size must be a positive int, got {codebook_size!r}")
    codes = torch.as_tensor(np.asarray(indices) if not isinstance(indices, Tensor) else indices)
    if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
        raise TypeError(f"indices must be integers, got dtype {codes.dtype}")
    if codes.numel() == 0:
        raise ValueError("indices is empty")
    low, high = int(codes.min()), int(codes.max())
    if low < 0 or high >= codebook_size:
        raise ValueError(
            f"indices must be in 0..{codebook_size - 1} for codebook_size={codebook_size}, "
            f"got range [{low}, {high}]"
        )
    return codes.detach().to("cpu", torch.int64)


def code_histogram(indices: Any, codebook_size: int, *, per_position: bool = False) -> Tensor:
    """How often each code occurs.

    Args:
        indices: Integer codes, shape ``(B, *positions)`` (or ``(B,)``).
        codebook_size: Number of codes ``K``.
        per_position: Count separately at each position, over the batch axis only.

    Returns:
        int64 counts of shape ``(K,)``, or ``(*positions, K)`` with ``per_position``.
    """
    codes = _as_codes(indices, codebook_size)
    if not per_position:
        return torch.bincount(codes.reshape(-1), minlength=codebook_size)
    if codes.dim() < 2:
        raise ValueError(
            f"per_position needs indices with position axes (B, *positions), got shape "
            f"{tuple(codes.shape)}"
        )
    positions = codes.shape[1:]
    flat = codes.reshape(codes.shape[0], -1)  # (B, P)
    num_positions = flat.shape[1]
    offsets = torch.arange(num_positions).mul_(codebook_size)  # one block of K bins per position
    counts = torch.bincount((flat + offsets).reshape(-1), minlength=num_positions * codebook_size)
    return counts.reshape(*positions, codebook_size)


def perplexity_from_counts(counts: Tensor | np.ndarray) -> Tensor:
    """``exp`` of the entropy (nats) of the distribution given by counts on the last axis.

    Args:
        counts: Non-negative counts ``(..., K)`` (e.g. summed :func:`code_histogram` results).

    Returns:
        float64 tensor of shape ``counts.shape[:-1]`` (0-d for a single histogram).
    """
    c = torch.as_tensor(np.asarray(counts) if not isinstance(counts, Tensor) else counts)
    c = c.detach().to("cpu", torch.float64)
    if c.dim() == 0:
        raise ValueError("counts must have a code axis (..., K)")
    if (c < 0).any():
        raise ValueError("counts must be non-negative")
    total = c.sum(dim=-1, keepdim=True)
    if (total == 0).any():
        raise ValueError("counts must not sum to zero")
    p = c / total
    entropy = -torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum(dim=-1)
    return entropy.exp()


def codebook_perplexity(
    indices: Any, codebook_size: int, *, per_position: bool = False
) -> float | Tensor:
    """Perplexity ``exp(-sum_k p_k log p_k)`` of the empirical code distribution.

    Args:
        indices: Integer codes, shape ``(B, *positions)``.
        codebook_size: Number of codes ``K``.
        per_position: One perplexity per position (over the batch) instead of one overall.

    Returns:
        A float in ``[1, K]``, or a float64 tensor of shape ``positions`` with ``per_position``.
    """
    counts = code_histogram(indices, codebook_size, per_position=per_position)
    result = perplexity_from_counts(counts)
    return result if per_position else float(result)


class CodebookUsage(NamedTuple):
    """Result of :func:`codebook_usage`.

    Attributes:
        fraction_used: Fraction of the ``K`` codes that occur at least once.
        used: Number of codes that occur.
        dead_codes: Number of codes that never occur (``K - used``).
        dead: The dead codes' indices, int64 tensor (for codebook resets).
        perplexity: :func:`codebook_perplexity` of the same indices.
        counts: :func:`code_histogram` of the same indices, ``(K,)``.
    """

    fraction_used: float
    used: int
    dead_codes: int
    dead: Tensor
    perplexity: float
    counts: Tensor


def codebook_usage(indices: Any, codebook_size: int) -> CodebookUsage:
    """Which codes are used, over all positions and the batch.

    Args:
        indices: Integer codes of any shape.
        codebook_size: Number of codes ``K``.
    """
    counts = code_histogram(indices, codebook_size)
    used = int((counts > 0).sum())
    return CodebookUsage(
        fraction_used=used / codebook_size,
        used=used,
        dead_codes=codebook_size - used,
        dead=torch.nonzero(counts == 0).flatten(),
        perplexity=float(perplexity_from_counts(counts)),
        counts=counts,
    )
