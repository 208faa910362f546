"""Chart algorithms for a CRF over unlabeled binary trees, vectorised over span width.

A tree over ``n`` words is its set of ``2n - 1`` spans ``(i, j)``, *inclusive* word indices
``0 <= i <= j < n``: the ``n`` leaves ``(i, i)``, the root ``(0, n - 1)`` and the ``n - 2``
other constituents. A tree's score is the sum of its spans' scores ``s[i, j]`` (leaves
included: they are in every tree, so they only shift ``log Z``), and

    p(tree) = exp(score(tree) - log Z),    log Z = log sum over all binary trees of exp(score).

Inside recursion for a span of width ``w = j - i >= 1`` (``alpha(i, i) = s[i, i]``)::

    gamma(i, j) = logsumexp_{t=0..w-1} alpha(i, i+t) + alpha(i+t+1, j)     (its splits)
    alpha(i, j) = s[i, j] + gamma(i, j)

**Vectorisation** (the trick torch-struct's ``CKY_CRF`` uses; this is our own code). The
chart is kept twice, skewed so that every operand of one width is a plain strided slice:

* ``by_start[b, i, w] = alpha(i, i + w)``  (row = start, column = width),
* ``by_end[b, j, N - 1 - w] = alpha(j - w, j)``  (row = end, column = reversed width).

For width ``w`` and every start ``i < N - w`` at once, the left parts ``alpha(i, i+t)`` are
``by_start[:, :N-w, :w]`` and the right parts ``alpha(i+t+1, i+w)`` are
``by_end[:, w:, N-w:]``, aligned on ``t``; one ``logsumexp`` over the last axis of their sum
fills the whole width: ``N - 1`` batched steps, no Python loop over spans or split points.
Padded batches of mixed lengths share the chart: sentence ``b``'s ``log Z`` is read at its
root ``by_start[b, 0, n_b - 1]``, and the spans beyond its end are computed but never
reach its root (their scores are zeroed first, so they stay finite).

**Gradients.** :func:`log_partition` is a :class:`torch.autograd.Function`: the forward fills
the chart without recording a graph, the backward is the outside pass (the same skewed
slices, widths in decreasing order), so ``d log Z / d s[i, j]`` is the span marginal
``p((i, j) in tree)``. Under ``create_graph=True`` (a differentiable marginal, second
derivatives) the backward instead differentiates a recorded inside pass, so higher-order
gradients are exact too.

**Entropy** (:func:`entropy`): the entropy semiring as a second inside pass recorded by
autograd (so the entropy is differentiable, as URNNG's entropy term needs). With
``p_t = exp(alpha(i,i+t) + alpha(i+t+1,j) - gamma(i,j))`` the split distribution of span
``(i, j)`` and ``H(i, i) = 0``::

    H(i, j) = sum_t p_t * (H(i, i+t) + H(i+t+1, j) - log p_t)

and the tree entropy is ``H(0, n - 1)``: a tree is drawn top-down by choosing one split per
constituent, so its entropy is the expected sum of the split choices' entropies.

**Sampling and CKY** (:func:`top_down`): exact top-down sampling from the inside chart.
Each (sentence, sample) pair keeps a stack of constituents still to split; every step pops
one constituent per pair, draws its split ``t`` with probability ``p_t`` (Gumbel-max over
the logits ``alpha(i, i+t) + alpha(i+t+1, j)``) and pushes the children wider than one word.
A tree over ``n`` words has ``n - 1`` splits, so ``N - 1`` steps finish every pair, batched
over sentences and samples alike. The same walk with ``argmax`` instead of a draw, over a
max-semiring chart, is CKY (Viterbi); over the span marginals it is minimum-Bayes-risk
parsing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "Chart",
    "fill_chart",
    "log_partition",
    "entropy",
    "top_down",
    "valid_span_mask",
]


class Chart(NamedTuple):
    """A filled inside chart in the skewed layout (see the module docstring).

    Attributes:
        by_start: ``(B, N, N)``; ``by_start[b, i, w] = alpha(i, i + w)``.
        by_end: ``(B, N, N)``; ``by_end[b, j, N - 1 - w] = alpha(j - w, j)``.
        split: ``(B, N, N)``; ``split[b, i, w] = gamma(i, i + w)``, the reduction over the
            splits of span ``(i, i + w)`` before its own score is added (0 for leaves).
    """

    by_start: Tensor
    by_end: Tensor
    split: Tensor


def valid_span_mask(lengths: Tensor, n: int) -> Tensor:
    """``(B, n, n)`` boolean mask of the spans ``(i, j)`` with ``i <= j < lengths[b]``.

    Args:
        lengths: ``(B,)`` sentence lengths.
        n: Padded length ``N``.
    """
    pos = torch.arange(n, device=lengths.device)
    upper = pos[:, None] <= pos[None, :]  # (N, N): i <= j
    inside = pos[None, :] < lengths[:, None]  # (B, N): j < n_b
    return upper[None] & inside[:, None, :]


def _logsumexp(parts: Tensor) -> Tensor:
    return torch.logsumexp(parts, dim=-1)


def _max(parts: Tensor) -> Tensor:
    return parts.amax(dim=-1)


_REDUCE: dict[str, Callable[[Tensor], Tensor]] = {"log": _logsumexp, "max": _max}


@torch.no_grad()
def fill_chart(scores: Tensor, *, semiring: str = "log") -> Chart:
    """Fill the inside chart of every sentence of the batch, one batched step per width.

    Records no autograd graph (:func:`log_partition` and :func:`entropy` give gradients).

    Args:
        scores: ``(B, N, N)`` span scores, ``scores[b, i, j]`` for the span of words ``i..j``
            (only the upper triangle is read). Spans beyond a sentence's end are computed but
            never reach its root; they must be finite (zero them, as :class:`TreeCRF` does).
        semiring: ``"log"`` (logsumexp: the inside algorithm) or ``"max"`` (CKY/Viterbi).
    """
    reduce = _REDUCE[semiring]
    batch, n, _ = scores.shape
    by_start = scores.new_zeros(batch, n, n)
    by_end = scores.new_zeros(batch, n, n)
    split = scores.new_zeros(batch, n, n)
    leaves = scores.diagonal(0, 1, 2)  # (B, N)
    by_start[:, :, 0] = leaves
    by_end[:, :, n - 1] = leaves
    for w in range(1, n):
        # (B, N-w, w): alpha(i, i+t) + alpha(i+t+1, i+w) for every start i and split t
        parts = by_start[:, : n - w, :w] + by_end[:, w:, n - w :]
        gamma = reduce(parts)  # (B, N-w)
        split[:, : n - w, w] = gamma
        alpha = gamma + scores.diagonal(w, 1, 2)
        by_start[:, : n - w, w] = alpha
        by_end[:, w:, n - 1 - w] = alpha
    return Chart(by_start, by_end, split)


def _roots(chart_by_start: Tensor, lengths: Tensor) -> Tensor:
    """``alpha(0, n_b - 1)`` for every sentence: ``(B,)``."""
    batch = chart_by_start.shape[0]
    rows = torch.arange(batch, device=chart_by_start.device)
    return chart_by_start[rows, 0, lengths - 1]


@torch.no_grad()
def _outside(chart: Chart, lengths: Tensor, grad: Tensor) -> Tensor:
    """The outside pass: ``grad[b] * p((i, j) in tree)`` as a ``(B, N, N)`` tensor.

    ``mu(i, j) = d log Z / d alpha(i, j)`` is pushed from each span to its children with the
    split probabilities ``p_t``, widths in decreasing order, in the same skewed layout.
    """
    by_start, by_end, split = chart
    batch, n, _ = by_start.shape
    mu_start = torch.zeros_like(by_start)  # mass reaching (i, i+w) as a left part / root
    mu_end = torch.zeros_like(by_start)  # mass reaching (j-w, j) as a right part
    rows = torch.arange(batch, device=by_start.device)
    mu_start[rows, 0, lengths - 1] = grad.to(by_start.dtype)
    marginals = torch.zeros_like(by_start)
    for w in range(n - 1, 0, -1):
        mu = mu_start[:, : n - w, w] + mu_end[:, w:, n - 1 - w]  # (B, N-w)
        marginals.diagonal(w, 1, 2).copy_(mu)
        parts = by_start[:, : n - w, :w] + by_end[:, w:, n - w :]  # (B, N-w, w)
        # p_t * mu: the share of the span's mass that goes through split t
        share = parts.sub_(split[:, : n - w, w : w + 1]).exp_().mul_(mu.unsqueeze(-1))
        mu_start[:, : n - w, :w] += share
        mu_end[:, w:, n - w :] += share
    marginals.diagonal(0, 1, 2).copy_(mu_start[:, :, 0] + mu_end[:, :, n - 1])
    return marginals


def _recorded_inside(
    scores: Tensor, lengths: Tensor, *, with_entropy: bool
) -> tuple[Tensor, Tensor | None]:
    """The inside pass (and the entropy semiring) recorded by autograd: ``(log Z, H or None)``.

    Differentiable to any order; slower than :func:`log_partition` (autograd keeps every
    width's intermediates and the in-place chart writes).
    """
    batch, n, _ = scores.shape
    by_start = scores.new_zeros(batch, n, n)
    by_end = scores.new_zeros(batch, n, n)
    leaves = scores.diagonal(0, 1, 2)
    by_start[:, :, 0] = leaves
    by_end[:, :, n - 1] = leaves
    h_start = scores.new_zeros(batch, n, n) if with_entropy else None
    h_end = scores.new_zeros(batch, n, n) if with_entropy else None
    for w in range(1, n):
        parts = by_start[:, : n - w, :w] + by_end[:, w:, n - w :]  # (B, N-w, w)
        gamma = torch.logsumexp(parts, dim=-1)
        alpha = gamma + scores.diagonal(w, 1, 2)
        by_start[:, : n - w, w] = alpha
        by_end[:, w:, n - 1 - w] = alpha
        if h_start is not None and h_end is not None:
            log_p = parts - gamma.unsqueeze(-1)  # log p_t, the split distribution
            children = h_start[:, : n - w, :w] + h_end[:, w:, n - w :]
            h = (log_p.exp() * (children - log_p)).sum(-1)
            h_start[:, : n - w, w] = h
            h_end[:, w:, n - 1 - w] = h
    log_z = _roots(by_start, lengths)
    return log_z, None if h_start is None else _roots(h_start, lengths)


class _LogPartition(torch.autograd.Function):
    """log Z with the outside pass as its backward (see :func:`log_partition`)."""

    @staticmethod
    def forward(ctx, scores: Tensor, lengths: Tensor) -> Tensor:  # type: ignore[override]
        chart = fill_chart(scores)
        ctx.save_for_backward(scores, lengths, *chart)
        return _roots(chart.by_start, lengths)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        scores, lengths, *chart = ctx.saved_tensors
        if torch.is_grad_enabled():
            # create_graph=True: differentiate a recorded pass so that the marginals are
            # themselves differentiable (exact second derivatives)
            log_z, _ = _recorded_inside(scores, lengths, with_entropy=False)
            (g,) = torch.autograd.grad(log_z, scores, grad, create_graph=True)
            return g, None
        return _outside(Chart(*chart), lengths, grad), None


def log_partition(scores: Tensor, lengths: Tensor) -> Tensor:
    """``log Z`` of every sentence, ``(B,)``; its gradient is the span marginals.

    Args:
        scores: ``(B, N, N)`` finite span scores (spans beyond a sentence's end ignored).
        lengths: ``(B,)`` long tensor of sentence lengths, each in ``1..N``, on the scores'
            device.
    """
    return _LogPartition.apply(scores, lengths)


def entropy(scores: Tensor, lengths: Tensor) -> Tensor:
    """Exact entropy of every sentence's tree distribution, ``(B,)``, differentiable.

    One inside pass over the entropy semiring (see the module docstring).

    Args:
        scores: ``(B, N, N)`` finite span scores.
        lengths: ``(B,)`` long tensor of sentence lengths, each in ``1..N``.
    """
    _, h = _recorded_inside(scores, lengths, with_entropy=True)
    assert h is not None
    return h


@torch.no_grad()
def top_down(
    chart: Chart,
    lengths: Tensor,
    *,
    samples: int = 1,
    sample: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Trees read top-down from a filled chart: ``(B, samples, N, N)`` span indicators.

    Args:
        chart: A chart from :func:`fill_chart` (``semiring="log"`` to sample,
            ``"max"`` for CKY).
        lengths: ``(B,)`` long tensor of sentence lengths, each in ``1..N``.
        samples: Trees per sentence.
        sample: Draw each split from ``p_t`` (exact sampling); ``False`` takes the best split
            (CKY's backtrace; then every sample is the same tree).
        generator: Random generator on the chart's device for the draws.

    Returns:
        ``indicators[b, k, i, j] = 1`` when span ``(i, j)`` (leaves included) is in the
        ``k``-th tree of sentence ``b``; 0 elsewhere, padding included.
    """
    by_start, by_end = chart.by_start, chart.by_end
    batch, n, _ = by_start.shape
    device = by_start.device
    m = batch * samples
    owner = torch.arange(batch, device=device).repeat_interleave(samples)  # (M,) sentence of row
    length = lengths.to(device)[owner]
    rows = torch.arange(m, device=device)
    pos = torch.arange(n, device=device)
    # one spare row and column: pairs that have finished write their (dummy) span there
    out = by_start.new_zeros(m, n + 1, n + 1)
    out[:, pos, pos] = (pos[None, :] < length[:, None]).to(out.dtype)  # leaves
    stack_i = torch.zeros(m, n, dtype=torch.long, device=device)
    stack_j = torch.zeros(m, n, dtype=torch.long, device=device)
    stack_j[:, 0] = length - 1
    size = (length > 1).long()  # constituents waiting to be split
    for _ in range(n - 1):
        active = size > 0
        size = size - active.long()
        i = stack_i[rows, size]
        j = stack_j[rows, size]
        out[rows, torch.where(active, i, n), torch.where(active, j, n)] = 1
        w = j - i
        left = by_start[owner, i]  # (M, N): alpha(i, i+t)
        right_index = (n - w[:, None] + pos).clamp_(max=n - 1)
        right = by_end[owner, j].gather(1, right_index)  # (M, N): alpha(i+t+1, j)
        logits = (left + right).masked_fill_(pos >= w[:, None], float("-inf"))
        if sample:
            u = torch.rand(m, n, device=device, dtype=logits.dtype, generator=generator)
            logits -= torch.log(-torch.log(u.clamp_(min=torch.finfo(u.dtype).tiny)))
        k = i + logits.argmax(dim=1)  # the split: left (i, k), right (k+1, j)
        for push, start, end in ((active & (j - k > 1), k + 1, j), (active & (k > i), i, k)):
            stack_i[rows, size] = torch.where(push, start, stack_i[rows, size])
            stack_j[rows, size] = torch.where(push, end, stack_j[rows, size])
            size = size + push.long()
    return out[:, :n, :n].reshape(batch, samples, n, n)
