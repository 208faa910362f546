"""The tree CRF: URNNG's inference network q(tree | sentence) (Kim et al. 2019, arXiv 1904.03746).

:class:`SpanScorer` turns a padded batch of token ids into span scores ``(B, N, N)``;
:class:`TreeCRF` is the distribution over unlabeled binary trees those scores define,
``q(tree) = exp(sum of the tree's span scores - log Z)``: its ``log Z``, span marginals,
exact entropy, exact samples, CKY and minimum-Bayes-risk parses and the log-probability of
given trees, all batched over sentences of mixed lengths. The chart algorithms are in
:mod:`seqae.tree.inside`; trees are ``(B, N, N)`` span indicators (see
:mod:`seqae.tree.trees` for span sets, brackets and SHIFT/REDUCE actions).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqae.tree import inside

__all__ = ["SpanScorer", "TreeCRF", "as_lengths"]


def as_lengths(
    lengths: Tensor | Sequence[int] | None,
    *,
    batch: int,
    n: int,
    device: torch.device | str,
    who: str,
) -> Tensor:
    """Sentence lengths as a ``(batch,)`` long tensor on ``device``, each checked in ``1..n``.

    Args:
        lengths: The lengths, or ``None`` for ``n`` everywhere (an unpadded batch).
        batch: Batch size the lengths must match.
        n: Padded length.
        device: Where the result goes.
        who: Component name used in the messages.
    """
    if lengths is None:
        return torch.full((batch,), n, dtype=torch.long, device=device)
    lengths = torch.as_tensor(lengths, device=device)
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool or lengths.dim() != 1:
        raise ValueError(
            f"{who}: lengths must be a 1-d integer tensor, got dtype {lengths.dtype} and "
            f"shape {tuple(lengths.shape)}"
        )
    if lengths.numel() != batch:
        raise ValueError(f"{who}: got {lengths.numel()} lengths for a batch of {batch}")
    if batch and (int(lengths.min()) < 1 or int(lengths.max()) > n):
        raise ValueError(
            f"{who}: lengths must be in 1..{n} (the padded length), got {lengths.tolist()}"
        )
    return lengths.long()


class TreeCRF:
    """Distribution over the unlabeled binary trees of each sentence of a padded batch.

    ``q(tree) = exp(score(tree) - log Z)`` with ``score(tree) = sum over its spans (i, j)``
    (inclusive word indices, leaves included) ``of scores[b, i, j]``. Trees are ``(B, N, N)``
    span indicators (``(B, K, N, N)`` for ``K`` per sentence).

    Args:
        scores: ``(B, N, N)`` floating span scores; only the upper triangle inside each
            sentence is used (the rest is zeroed), so padding may hold anything.
        lengths: Sentence lengths ``(B,)`` in ``1..N`` (a tensor or a list); ``None``: all ``N``.
    """

    def __init__(self, scores: Tensor, lengths: Tensor | Sequence[int] | None = None) -> None:
        if not isinstance(scores, Tensor) or not scores.is_floating_point():
            raise TypeError(
                f"TreeCRF: scores must be a floating-point tensor, got "
                f"{scores.dtype if isinstance(scores, Tensor) else type(scores).__name__}"
            )
        if scores.dim() != 3 or scores.shape[1] != scores.shape[2] or scores.shape[1] < 1:
            raise ValueError(
                f"TreeCRF: scores must have shape (B, N, N) with N >= 1, got {tuple(scores.shape)}"
            )
        batch, n, _ = scores.shape
        self.lengths = as_lengths(lengths, batch=batch, n=n, device=scores.device, who="TreeCRF")
        self.mask = inside.valid_span_mask(self.lengths, n)  # (B, N, N) spans inside sentences
        #: the scores with everything outside a sentence's spans set to 0
        self.scores = torch.where(self.mask, scores, scores.new_zeros(()))
        self._chart: inside.Chart | None = None

    @property
    def n(self) -> int:
        """The padded length ``N``."""
        return self.scores.shape[1]

    def _log_chart(self) -> inside.Chart:
        """The inside chart, filled once without a graph (for samples and detached log Z)."""
        if self._chart is None:
            self._chart = inside.fill_chart(self.scores.detach())
        return self._chart

    def log_partition(self) -> Tensor:
        """``log Z`` per sentence, ``(B,)``; differentiable (its gradient is the marginals)."""
        if torch.is_grad_enabled() and self.scores.requires_grad:
            return inside.log_partition(self.scores, self.lengths)
        rows = torch.arange(self.scores.shape[0], device=self.scores.device)
        return self._log_chart().by_start[rows, 0, self.lengths - 1]

    def marginals(self, *, create_graph: bool = False) -> Tensor:
        """Span marginals ``q((i, j) in tree)``, ``(B, N, N)``, as ``d log Z / d scores``.

        Leaves have marginal 1; the root of each sentence too; 0 outside the sentences.

        Args:
            create_graph: Keep the marginals differentiable with respect to the scores.
        """
        scores = self.scores
        if not scores.requires_grad:
            scores = scores.detach().requires_grad_()
        with torch.enable_grad():
            log_z = inside.log_partition(scores, self.lengths)
            (marginals,) = torch.autograd.grad(log_z.sum(), scores, create_graph=create_graph)
        return marginals

    def entropy(self) -> Tensor:
        """Exact entropy of each sentence's tree distribution, ``(B,)``, differentiable."""
        return inside.entropy(self.scores, self.lengths)

    def sample(self, samples: int = 1, *, generator: torch.Generator | None = None) -> Tensor:
        """Exact samples, ``(B, samples, N, N)`` span indicators (no gradient: score them with
        :meth:`log_prob` for a score-function estimator).

        Args:
            samples: Trees per sentence.
            generator: Random generator on the scores' device.
        """
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"TreeCRF.sample: samples must be a positive int, got {samples!r}")
        return inside.top_down(
            self._log_chart(), self.lengths, samples=samples, generator=generator
        )

    def argmax(self) -> Tensor:
        """The most probable tree of each sentence (CKY, max-semiring), ``(B, N, N)``."""
        chart = inside.fill_chart(self.scores.detach(), semiring="max")
        return inside.top_down(chart, self.lengths, sample=False)[:, 0]

    def mbr(self) -> Tensor:
        """Minimum-Bayes-risk trees, ``(B, N, N)``: CKY over the span marginals, the tree with
        the largest expected number of correct spans."""
        marginals = self.marginals().detach()
        chart = inside.fill_chart(marginals, semiring="max")
        return inside.top_down(chart, self.lengths, sample=False)[:, 0]

    def score(self, trees: Tensor) -> Tensor:
        """Sum of the span scores of given trees: ``(B,)`` for ``(B, N, N)`` trees, ``(B, K)``
        for ``(B, K, N, N)``. Differentiable in the scores."""
        batch, n = self.scores.shape[0], self.n
        if trees.dim() not in (3, 4) or trees.shape[0] != batch or trees.shape[-2:] != (n, n):
            raise ValueError(
                f"TreeCRF: trees must have shape ({batch}, {n}, {n}) or ({batch}, K, {n}, {n}), "
                f"got {tuple(trees.shape)}"
            )
        scores = self.scores if trees.dim() == 3 else self.scores.unsqueeze(1)
        return (scores * trees.to(scores.dtype)).sum((-2, -1))

    def log_prob(self, trees: Tensor) -> Tensor:
        """``log q(tree) = score(tree) - log Z``: ``(B,)`` or ``(B, K)``, differentiable."""
        log_z = self.log_partition()
        return self.score(trees) - (log_z if trees.dim() == 3 else log_z.unsqueeze(1))


class SpanScorer(nn.Module):
    """Span scores from words: embeddings, a BiLSTM, and an MLP over each span's boundary
    states (URNNG's inference network, arXiv 1904.03746, section 3.1 and appendix).

    The sentence is framed by two learned boundary vectors (start, end). With ``f`` and ``b``
    the forward and backward LSTM states at positions ``0..n+1`` (word ``t`` at ``t + 1``),
    span ``(i, j)`` is represented by ``[f[j+1] - f[i]; b[i+1] - b[j+2]]`` and scored by
    ``Linear -> ReLU -> LayerNorm -> Dropout -> Linear``. The first linear layer is applied to
    the states before the differences are taken (the same function, ``O(N)`` instead of
    ``O(N^2)`` matrix products).

    Args:
        vocab_size: Number of token ids.
        embed_dim: Word embedding size.
        hidden_dim: LSTM state size per direction.
        mlp_dim: Hidden size of the span MLP.
        dropout: Dropout on the embeddings and inside the MLP (URNNG: 0.5).
        padding_idx: Token id of padding (its embedding stays zero).
    """

    def __init__(
        self,
        *,
        vocab_size: int = 10_000,
        embed_dim: int = 256,
        hidden_dim: int = 256,
        mlp_dim: int = 256,
        dropout: float = 0.5,
        padding_idx: int | None = 0,
    ) -> None:
        super().__init__()
        for name, value in (
            ("vocab_size", vocab_size),
            ("embed_dim", embed_dim),
            ("hidden_dim", hidden_dim),
            ("mlp_dim", mlp_dim),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SpanScorer: {name} must be a positive int, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"SpanScorer: dropout must be in [0, 1), got {dropout!r}")
        self.hidden_dim = hidden_dim
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
        self.boundary = nn.Parameter(torch.randn(2, embed_dim))  # start, end
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.forward_proj = nn.Linear(hidden_dim, mlp_dim, bias=False)
        self.backward_proj = nn.Linear(hidden_dim, mlp_dim, bias=False)
        self.proj_bias = nn.Parameter(torch.zeros(mlp_dim))
        self.head = nn.Sequential(
            nn.ReLU(), nn.LayerNorm(mlp_dim), nn.Dropout(dropout), nn.Linear(mlp_dim, 1)
        )

    def forward(self, tokens: Tensor, lengths: Tensor | Sequence[int] | None = None) -> Tensor:
        """Span scores ``(B, N, N)`` (0 outside each sentence's spans).

        Args:
            tokens: ``(B, N)`` token ids, padded after each sentence.
            lengths: ``(B,)`` sentence lengths in ``1..N``; ``None``: all ``N``.
        """
        if tokens.dim() != 2 or tokens.dtype.is_floating_point:
            raise ValueError(
                f"SpanScorer: tokens must be a (B, N) integer tensor, got dtype {tokens.dtype} "
                f"and shape {tuple(tokens.shape)}"
            )
        batch, n = tokens.shape
        lengths = as_lengths(lengths, batch=batch, n=n, device=tokens.device, who="SpanScorer")
        rows = torch.arange(batch, device=tokens.device)
        x = self.embed(tokens)  # (B, N, E)
        start = self.boundary[0].expand(batch, 1, -1)
        x = torch.cat([start, x, x.new_zeros(batch, 1, x.shape[-1])], dim=1)  # (B, N+2, E)
        x = x.index_put((rows, lengths + 1), self.boundary[1].expand(batch, -1))
        packed = pack_padded_sequence(
            self.dropout(x), (lengths + 2).cpu(), batch_first=True, enforce_sorted=False
        )
        states, _ = self.lstm(packed)
        states, _ = pad_packed_sequence(states, batch_first=True, total_length=n + 2)
        fwd = self.forward_proj(states[..., : self.hidden_dim])  # (B, N+2, M)
        bwd = self.backward_proj(states[..., self.hidden_dim :])
        # [b, i, j]: f[j+1] - f[i] and b[i+1] - b[j+2], projected
        span = (
            fwd[:, 1 : n + 1].unsqueeze(1)
            - fwd[:, :n].unsqueeze(2)
            + bwd[:, 1 : n + 1].unsqueeze(2)
            - bwd[:, 2 : n + 2].unsqueeze(1)
            + self.proj_bias
        )  # (B, N, N, M)
        scores = self.head(span).squeeze(-1)
        return scores.masked_fill(~inside.valid_span_mask(lengths, n), 0.0)
