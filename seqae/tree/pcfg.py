"""The compound PCFG (Kim, Dyer & Rush 2019, arXiv 1906.10225): text -> latent labeled tree.

A probabilistic context-free grammar in Chomsky normal form with ``NT`` nonterminals and
``T`` preterminals whose rule probabilities depend on a sentence-level latent ``z``:

* root rules ``S -> A`` (``root``, ``(B, NT + T)``), binary rules ``A -> B C`` for a
  nonterminal ``A`` and children ``B, C`` among all ``NT + T`` symbols (``rules``,
  ``(B, NT, NT + T, NT + T)``) and emissions ``T -> word`` (``emissions``, ``(B, N, T)``,
  already read at each word of the sentence). Symbols ``0..NT-1`` are the nonterminals,
  ``NT..NT+T-1`` the preterminals; a one-word span is always a preterminal, a wider span a
  nonterminal (the paper's grammar).
* Each distribution is a softmax of an MLP over a symbol embedding concatenated with ``z``
  (the paper's section 3 and its code: one linear layer for the binary rules, two residual
  blocks for root and emissions).
* ``z ~ q(z | x)`` comes from an inference network (embeddings, a BiLSTM, max pooling over
  the words) through the core's :class:`~seqae.core.gaussian.GaussianBottleneck`, which
  gives the reparameterised sample and the KL to ``N(0, I)``. With one sample,
  ``ELBO = log p(x | z) - KL(q(z | x) || p(z))``.

**One-word sentences** (a convention of this implementation). The paper's root rule ranges
over the nonterminals only, so a one-word sentence has probability 0 there (its training
data drop them). Here ``S -> A`` ranges over all ``NT + T`` symbols: a one-word sentence is
``S -> T -> word``, a longer one ``S -> A`` with ``A`` a nonterminal. The grammar is then a
distribution over strings of every length ``>= 1``; on sentences of two or more words the
preterminal root entries only take probability mass away.

**The inside algorithm, vectorised over span width** (:func:`inside_log_likelihood`). Spans
are inclusive word ranges ``(i, j)``; ``w = j - i``. With ``beta(i, j)[A]`` the inside
probability of nonterminal ``A`` over words ``i..j`` and ``e(i)[t] = p(x_i | t)``, a span of
width ``w >= 1`` splits at ``t = 0..w-1`` into a left part ``(i, i+t)`` and a right part
``(i+t+1, j)``, a preterminal when one word wide::

    beta(i, j)[A] = sum_t sum_{B, C} P[A, B, C] * left_t[B] * right_t[C]

The chart is laid out as :mod:`seqae.tree.inside` lays out its unlabeled chart, skewed twice
so that every operand of one width is a strided slice: ``by_start[b, i, w] = beta(i, i + w)``
and ``by_end[b, j, N - 1 - w] = beta(j - w, j)``, each ``(B, N, N, NT)``. One batched step
per width ``w`` fills every start ``i < N - w`` at once, in three terms:

* both children nonterminals (splits ``t = 1..w-2``): the left parts
  ``by_start[:, :N-w, 1:w-1]`` and right parts ``by_end[:, w:, N-w+1:N-1]`` (each
  ``(B, N-w, w-2, NT)``) are contracted over ``t`` by one matrix product into
  ``(B, N-w, NT, NT)``, then with the rules ``(B, NT * NT, NT)`` by a second one;
* a preterminal left child (``t = 0``) or right child (``t = w - 1``): the rules are first
  contracted with each word's emissions, once for the whole chart (``(B, N, NT, NT)`` and
  ``(B, N, NT, NT + T)``), so each such term is a matrix-vector product per span;
* two-word spans (``w = 1``) combine two preterminals with the second table.

**Log space by scaling.** The chart holds probabilities with one scale per span:
``beta(i, j) = chart(i, j) * exp(scale(i, j))``, ``max_A chart(i, j)[A] = 1``. The terms of
a width are combined under their common largest scale and the result renormalised, so
products of probabilities never underflow however long the sentence, and the sums are
matrix products rather than ``logsumexp`` over a ``(B, N, NT^3)`` tensor per width. The scales
carry no gradient (they cancel exactly), so autograd through the recorded pass gives exact
gradients. What is lost: a rule whose probability underflows (``log P < -87`` in float32)
counts as impossible; use float64 grammars where that matters.

**Memory** is ``O(B N^2 NT)`` for the chart, ``O(B N NT (NT + T))`` for the two
emission-contracted rule tables, and ``O(B N^2 NT^2)`` for what autograd keeps of the
nonterminal products (summed over widths).

**Span marginals** (:func:`span_marginals`) are ``d log p(x | z) / d s(i, j)`` for a zero span
score ``s(i, j)`` multiplied onto every label of the span: the posterior probability that
``(i, j)`` is a constituent, summed over labels. **MBR parsing** (:func:`mbr_trees`) is CKY
over those marginals (:func:`seqae.tree.inside.fill_chart` in the max semiring and its
backtrace), the tree with the largest expected number of correct spans.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqae.core import losses
from seqae.core.base import BottleneckOutput
from seqae.core.gaussian import GaussianBottleneck
from seqae.core.saving import SavedByConfig
from seqae.tree import inside
from seqae.tree.checks import check_positive_ints
from seqae.tree.crf import as_lengths
from seqae.tree.trees import Span, indicators_to_spans

__all__ = [
    "GrammarRules",
    "PCFGOutput",
    "CompoundPCFG",
    "inside_log_likelihood",
    "span_marginals",
    "mbr_trees",
]


class GrammarRules(NamedTuple):
    """The rule log-probabilities of one PCFG per sentence.

    Attributes:
        root: ``(B, NT + T)``, ``log p(S -> A)`` (preterminals only for one-word sentences).
        rules: ``(B, NT, NT + T, NT + T)``, ``log p(A -> B C)``.
        emissions: ``(B, N, T)``, ``log p(x_i | T)`` at each word ``i`` (padding: anything
            finite).
    """

    root: Tensor
    rules: Tensor
    emissions: Tensor


class PCFGOutput(NamedTuple):
    """What :meth:`CompoundPCFG.forward` returns.

    Attributes:
        loss: Scalar training loss: ``nll.mean() + kl_loss`` (the negative ELBO per sentence).
        nll: ``(B,)`` ``-log p(x | z)`` at the bottleneck's ``z``, differentiable.
        kl_loss: The bottleneck's own scalar loss, ``KL(q(z | x) || N(0, I))`` averaged over the
            batch (free bits applied when configured), differentiable.
        kl: ``(B,)`` detached KL of each sentence.
        elbo: ``(B,)`` detached ``log p(x | z) - KL`` per sentence.
        z: ``(B, z_dim)`` the latent used (a sample in training mode, the mean in eval mode).
        info: The bottleneck's detached diagnostics.
    """

    loss: Tensor
    nll: Tensor
    kl_loss: Tensor
    kl: Tensor
    elbo: Tensor
    z: Tensor
    info: dict[str, Tensor]


# --------------------------------------------------------------------------------------------
# the inside algorithm
# --------------------------------------------------------------------------------------------
def _check_grammar(grammar: GrammarRules, lengths: Tensor) -> tuple[int, int, int, int]:
    root, rules, emissions = grammar
    if emissions.dim() != 3:
        raise ValueError(f"emissions must be (B, N, T), got shape {tuple(emissions.shape)}")
    batch, n, t = emissions.shape
    if rules.dim() != 4 or rules.shape[0] != batch or rules.shape[2] != rules.shape[3]:
        raise ValueError(f"rules must be (B, NT, NT + T, NT + T), got shape {tuple(rules.shape)}")
    nt = rules.shape[1]
    if rules.shape[2] != nt + t or tuple(root.shape) != (batch, nt + t):
        raise ValueError(
            f"with {nt} nonterminals and {t} preterminals, rules must be "
            f"({batch}, {nt}, {nt + t}, {nt + t}) and root ({batch}, {nt + t}); got "
            f"{tuple(rules.shape)} and {tuple(root.shape)}"
        )
    if tuple(lengths.shape) != (batch,):
        raise ValueError(f"lengths must be ({batch},), got shape {tuple(lengths.shape)}")
    return batch, n, nt, t


def inside_log_likelihood(
    grammar: GrammarRules, lengths: Tensor, *, span_scores: Tensor | None = None
) -> Tensor:
    """``log p(x)`` of every sentence under its grammar, ``(B,)``, by the inside algorithm.

    One batched step per span width (see the module docstring); sentences of mixed lengths
    share the chart and each reads its own root. Recorded by autograd: differentiable in the
    grammar (and in ``span_scores``).

    Args:
        grammar: Root, binary-rule and emission log-probabilities (:class:`GrammarRules`).
        lengths: ``(B,)`` long tensor of sentence lengths in ``1..N``.
        span_scores: Optional ``(B, N, N)`` log-weights added to every label of span
            ``(i, j)`` (leaves included); its gradient at zero is the span marginals.
    """
    batch, n, nt, _ = _check_grammar(grammar, lengths)
    root, rules, emissions = grammar
    device, dtype = emissions.device, emissions.dtype
    lengths = lengths.to(device)
    pos = torch.arange(n, device=device)
    # padding words: log-probability 0 everywhere (finite; never reaches a sentence's root)
    emit = emissions.masked_fill((pos[None, :] >= lengths[:, None]).unsqueeze(-1), 0.0)
    if span_scores is not None:
        emit = emit + span_scores.diagonal(0, 1, 2).unsqueeze(-1)
    leaf_scale = emit.detach().amax(-1)  # (B, N)
    leaf = torch.exp(emit - leaf_scale.unsqueeze(-1))  # (B, N, T), max 1 per word
    prob = rules.exp()  # (B, NT, S, S)
    # rules contracted with a preterminal child's emissions, once for the whole chart
    left_leaf = torch.einsum("zip,zapc->ziac", leaf, prob[:, :, nt:, :nt])  # (B, N, A, C in NT)
    right_leaf = torch.einsum("zalp,zjp->zjal", prob[:, :, :, nt:], leaf)  # (B, N, A, B in S)
    both_nt = prob[:, :, :nt, :nt].reshape(batch, nt, nt * nt).transpose(1, 2)  # (B, NT^2, A)

    by_start = emissions.new_zeros(batch, n, n, nt)  # by_start[b, i, w] = chart(i, i + w)
    by_end = emissions.new_zeros(batch, n, n, nt)  # by_end[b, j, n-1-w] = chart(j - w, j)
    scale_start = emissions.new_zeros(batch, n, n)  # log scales, same layouts, no gradient
    scale_end = emissions.new_zeros(batch, n, n)
    tiny = torch.finfo(dtype).tiny
    for w in range(1, n):
        m = n - w  # spans of this width: starts 0..m-1, ends w..n-1
        if w == 1:  # two preterminals
            y = (right_leaf[:, 1:, :, nt:] @ leaf[:, :-1, :, None]).squeeze(-1)  # (B, m, A)
            top = leaf_scale[:, :-1] + leaf_scale[:, 1:]  # (B, m)
        else:
            # t = 0: preterminal + span (i+1, i+w); t = w-1: span (i, i+w-1) + preterminal
            s_left_leaf = leaf_scale[:, :m] + scale_end[:, w:, n - w]
            s_right_leaf = scale_start[:, :m, w - 1] + leaf_scale[:, w:]
            s_both = scale_start[:, :m, 1 : w - 1] + scale_end[:, w:, n - w + 1 : n - 1]
            top = torch.maximum(s_left_leaf, s_right_leaf)
            if w > 2:
                top = torch.maximum(top, s_both.amax(-1))
            # operands read from the chart are copied (the chart is written in place later)
            right = by_end[:, w:, n - w].clone().unsqueeze(-1)  # (B, m, C, 1)
            left = by_start[:, :m, w - 1].clone().unsqueeze(-1)  # (B, m, B, 1)
            weight_left_leaf = (s_left_leaf - top).exp().unsqueeze(-1)  # (B, m, 1)
            weight_right_leaf = (s_right_leaf - top).exp().unsqueeze(-1)
            y = (left_leaf[:, :m] @ right).squeeze(-1) * weight_left_leaf  # (B, m, A)
            y = y + (right_leaf[:, w:, :, :nt] @ left).squeeze(-1) * weight_right_leaf
            if w > 2:  # splits t = 1..w-2: both children nonterminals
                weight_both = (s_both - top.unsqueeze(-1)).exp().unsqueeze(-1)  # (B, m, w-2, 1)
                lefts = by_start[:, :m, 1 : w - 1] * weight_both  # (B, m, w-2, B), a new tensor
                rights = by_end[:, w:, n - w + 1 : n - 1].clone()  # (B, m, w-2, C)
                pairs = lefts.transpose(-1, -2) @ rights  # (B, m, B, C), summed over splits
                y = y + pairs.reshape(batch, m, nt * nt) @ both_nt
        if span_scores is not None:
            y = y * span_scores.diagonal(w, 1, 2).exp().unsqueeze(-1)
        norm = y.detach().amax(-1, keepdim=True).clamp_min(tiny)  # (B, m, 1)
        chart = y / norm
        scale = top + norm.squeeze(-1).log()
        by_start[:, :m, w] = chart
        by_end[:, w:, n - 1 - w] = chart
        scale_start[:, :m, w] = scale
        scale_end[:, w:, n - 1 - w] = scale

    rows = torch.arange(batch, device=device)
    last = lengths - 1
    root_prob = root.exp()
    phrase = (by_start[rows, 0, last] * root_prob[:, :nt]).sum(-1)  # S -> A, A nonterminal
    word = (leaf[:, 0] * root_prob[:, nt:]).sum(-1)  # one-word sentences: S -> T
    single = lengths == 1
    total = torch.where(single, word, phrase)
    scale = torch.where(single, leaf_scale[:, 0], scale_start[rows, 0, last])
    return total.log() + scale


def span_marginals(grammar: GrammarRules, lengths: Tensor) -> Tensor:
    """Posterior span marginals ``p((i, j) is a constituent | x)``, ``(B, N, N)``, detached.

    Summed over labels; leaves and each sentence's root have marginal 1, spans outside the
    sentences 0. Computed as the gradient of :func:`inside_log_likelihood` with respect to
    zero span scores.

    Args:
        grammar: The sentences' grammars (detached here).
        lengths: ``(B,)`` long tensor of sentence lengths in ``1..N``.
    """
    grammar = GrammarRules(*(t.detach() for t in grammar))
    batch, n = grammar.emissions.shape[:2]
    scores = grammar.emissions.new_zeros(batch, n, n, requires_grad=True)
    with torch.enable_grad():
        log_p = inside_log_likelihood(grammar, lengths, span_scores=scores)
        (marginals,) = torch.autograd.grad(log_p.sum(), scores)
    return marginals.triu()


def mbr_trees(marginals: Tensor, lengths: Tensor) -> Tensor:
    """Minimum-Bayes-risk trees: ``(B, N, N)`` span indicators of the binary tree whose spans
    have the largest summed marginal (CKY over the marginals, :mod:`seqae.tree.inside`).

    Args:
        marginals: ``(B, N, N)`` span marginals (0 outside each sentence).
        lengths: ``(B,)`` long tensor of sentence lengths in ``1..N``.
    """
    lengths = lengths.to(marginals.device)
    mask = inside.valid_span_mask(lengths, marginals.shape[1])
    scores = torch.where(mask, marginals.detach(), marginals.new_zeros(()))
    chart = inside.fill_chart(scores, semiring="max")
    return inside.top_down(chart, lengths, sample=False)[:, 0]


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------
class _Residual(nn.Module):
    """``x + relu(W2 relu(W1 x))``, the compound PCFG's residual block."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, dim)
        self.lin2 = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return x + F.relu(self.lin2(F.relu(self.lin1(x))))


def _symbol_mlp(in_dim: int, dim: int, out_dim: int) -> nn.Sequential:
    """Linear -> two residual blocks -> Linear (the root and emission MLPs)."""
    return nn.Sequential(
        nn.Linear(in_dim, dim), _Residual(dim), _Residual(dim), nn.Linear(dim, out_dim)
    )


class CompoundPCFG(SavedByConfig, nn.Module):
    """The compound PCFG (Kim, Dyer & Rush 2019, arXiv 1906.10225): a neural PCFG whose rule
    probabilities depend on a per-sentence latent ``z ~ q(z | x)``.

    Trained by maximising the ELBO (``forward(...).loss``); parses by MBR over span
    marginals at ``z = E_q[z]`` (:meth:`parse`); the perplexity bound comes from
    :meth:`importance_weighted_nll`. See the module docstring for the grammar, the one-word
    convention and the inside algorithm. Defaults are the paper's (section 4).

    Args:
        vocab_size: Number of token ids (the emission softmax ranges over all of them).
        nonterminals: Number of nonterminal symbols ``NT`` (paper: 30).
        preterminals: Number of preterminal symbols ``T`` (paper: 60).
        symbol_dim: Size of the symbol embeddings and of the rule MLPs' hidden layers
            (paper: 256).
        z_dim: Size of the sentence latent ``z`` (paper: 64).
        embed_dim: Word embedding size of the inference network (paper: 512).
        hidden_dim: LSTM state size per direction of the inference network (paper: 512).
    """

    model_type: ClassVar[str] = "compound_pcfg"

    def __init__(
        self,
        *,
        vocab_size: int = 10_000,
        nonterminals: int = 30,
        preterminals: int = 60,
        symbol_dim: int = 256,
        z_dim: int = 64,
        embed_dim: int = 512,
        hidden_dim: int = 512,
    ) -> None:
        super().__init__()
        check_positive_ints(
            "CompoundPCFG",
            vocab_size=vocab_size,
            nonterminals=nonterminals,
            preterminals=preterminals,
            symbol_dim=symbol_dim,
            z_dim=z_dim,
            embed_dim=embed_dim,
            hidden_dim=hidden_dim,
        )
        self.vocab_size = vocab_size
        self.nonterminals = nonterminals
        self.preterminals = preterminals
        self.symbol_dim = symbol_dim
        self.z_dim = z_dim
        self.embed_dim = embed_dim
        self.hidden_dim = hidden_dim
        symbols = nonterminals + preterminals
        # generative model: symbol embeddings + MLPs over [embedding; z]
        self.root_embedding = nn.Parameter(torch.randn(1, symbol_dim))
        self.nonterminal_embedding = nn.Parameter(torch.randn(nonterminals, symbol_dim))
        self.preterminal_embedding = nn.Parameter(torch.randn(preterminals, symbol_dim))
        self.root_mlp = _symbol_mlp(symbol_dim + z_dim, symbol_dim, symbols)
        self.rule_mlp = nn.Linear(symbol_dim + z_dim, symbols * symbols)
        self.emission_mlp = _symbol_mlp(symbol_dim + z_dim, symbol_dim, vocab_size)
        # inference network q(z | x): embeddings, BiLSTM, max pooling, Gaussian bottleneck
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.bottleneck = GaussianBottleneck(latent_dim=z_dim, in_dim=2 * hidden_dim)
        for param in self.parameters():  # the reference code's initialisation
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)

    @property
    def config(self) -> dict[str, Any]:
        """The constructor's arguments: what :meth:`from_config` takes."""
        return {
            "vocab_size": self.vocab_size,
            "nonterminals": self.nonterminals,
            "preterminals": self.preterminals,
            "symbol_dim": self.symbol_dim,
            "z_dim": self.z_dim,
            "embed_dim": self.embed_dim,
            "hidden_dim": self.hidden_dim,
        }

    # -- inputs -------------------------------------------------------------------------------
    def _inputs(self, tokens: Tensor, lengths: Tensor | Sequence[int] | None) -> Tensor:
        """Check ``tokens`` and return the lengths as a long tensor on their device."""
        if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.dtype.is_floating_point:
            raise ValueError(
                "CompoundPCFG: tokens must be a (B, N) integer tensor, got "
                + (
                    f"dtype {tokens.dtype} and shape {tuple(tokens.shape)}"
                    if isinstance(tokens, Tensor)
                    else type(tokens).__name__
                )
            )
        batch, n = tokens.shape
        if n < 1 or batch < 1:
            raise ValueError(f"CompoundPCFG: empty batch of shape {tuple(tokens.shape)}")
        low, high = int(tokens.min()), int(tokens.max())
        if low < 0 or high >= self.vocab_size:
            raise ValueError(
                f"CompoundPCFG: token ids must be in 0..{self.vocab_size - 1}, got {low}..{high}"
            )
        return as_lengths(lengths, batch=batch, n=n, device=tokens.device, who="CompoundPCFG")

    # -- inference network --------------------------------------------------------------------
    def features(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """The inference network's sentence features, ``(B, 2 * hidden_dim)``: a BiLSTM over
        the words, max-pooled over each sentence's positions.

        Args:
            tokens: ``(B, N)`` token ids.
            lengths: ``(B,)`` long tensor of sentence lengths in ``1..N``.
        """
        n = tokens.shape[1]
        packed = pack_padded_sequence(
            self.embed(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        states, _ = self.lstm(packed)
        states, _ = pad_packed_sequence(states, batch_first=True, total_length=n)  # (B, N, 2H)
        padding = torch.arange(n, device=tokens.device)[None, :] >= lengths[:, None]
        return states.masked_fill(padding.unsqueeze(-1), float("-inf")).amax(1)

    def encode(
        self, tokens: Tensor, lengths: Tensor | Sequence[int] | None = None
    ) -> BottleneckOutput:
        """``q(z | x)`` through the Gaussian bottleneck: a reparameterised sample in training
        mode, the mean in eval mode; ``loss`` is the batch-averaged KL.

        Args:
            tokens: ``(B, N)`` token ids, padded after each sentence.
            lengths: ``(B,)`` sentence lengths in ``1..N``; ``None``: all ``N``.
        """
        lengths = self._inputs(tokens, lengths)
        return self.bottleneck(self.features(tokens, lengths))

    # -- generative model ---------------------------------------------------------------------
    def grammar(self, z: Tensor, tokens: Tensor) -> GrammarRules:
        """The rule log-probabilities of each sentence's grammar given its latent.

        Args:
            z: ``(B, z_dim)`` latents.
            tokens: ``(B, N)`` token ids whose emission log-probabilities are read.
        """
        batch = z.shape[0]
        nt, t = self.nonterminals, self.preterminals

        def with_z(embedding: Tensor) -> Tensor:  # (K, D) -> (B, K, D + z)
            k = embedding.shape[0]
            return torch.cat(
                [embedding.expand(batch, k, -1), z.unsqueeze(1).expand(batch, k, -1)], -1
            )

        root = self.root_mlp(with_z(self.root_embedding)).squeeze(1).log_softmax(-1)  # (B, S)
        rules = self.rule_mlp(with_z(self.nonterminal_embedding)).log_softmax(-1)
        rules = rules.view(batch, nt, nt + t, nt + t)
        vocab = self.emission_mlp(with_z(self.preterminal_embedding)).log_softmax(-1)  # (B, T, V)
        emissions = vocab.gather(2, tokens.unsqueeze(1).expand(batch, t, -1)).transpose(1, 2)
        return GrammarRules(root, rules, emissions)

    def log_likelihood(
        self, tokens: Tensor, lengths: Tensor | Sequence[int] | None, z: Tensor
    ) -> Tensor:
        """``log p(x | z)``, ``(B,)``, differentiable (the exact inside algorithm).

        Args:
            tokens: ``(B, N)`` token ids, padded after each sentence.
            lengths: ``(B,)`` sentence lengths in ``1..N``; ``None``: all ``N``.
            z: ``(B, z_dim)`` latents.
        """
        lengths = self._inputs(tokens, lengths)
        return inside_log_likelihood(self.grammar(z, tokens), lengths)

    def forward(self, tokens: Tensor, lengths: Tensor | Sequence[int] | None = None) -> PCFGOutput:
        """One-sample ELBO: ``z`` from the bottleneck (a sample in training mode, the mean in
        eval mode), ``log p(x | z)`` by the inside algorithm, the KL from the bottleneck.

        Args:
            tokens: ``(B, N)`` token ids, padded after each sentence.
            lengths: ``(B,)`` sentence lengths in ``1..N``; ``None``: all ``N``.
        """
        lengths = self._inputs(tokens, lengths)
        out = self.bottleneck(self.features(tokens, lengths))
        nll = -inside_log_likelihood(self.grammar(out.z, tokens), lengths)
        kl = losses.kl_normal_std(out.info["mu"], out.info["logvar"], reduction="none").sum(-1)
        return PCFGOutput(
            loss=nll.mean() + out.loss,
            nll=nll,
            kl_loss=out.loss,
            kl=kl,
            elbo=(-nll).detach() - kl,
            z=out.z,
            info=out.info,
        )

    @torch.no_grad()
    def importance_weighted_nll(
        self,
        tokens: Tensor,
        lengths: Tensor | Sequence[int] | None = None,
        *,
        samples: int = 1000,
        chunk: int = 8,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Importance-weighted bound on ``-log p(x)`` per sentence, ``(B,)`` (the paper's
        perplexity bound, Burda et al. 2016, arXiv 1509.00519)::

            -log (1/S) sum_s p(x | z_s) p(z_s) / q(z_s | x),    z_s ~ q(z | x)

        Tighter as ``samples`` grows; ``samples=1`` is the negative one-sample ELBO in
        expectation. Divide the sum over a corpus by the sum of :meth:`predicted_tokens` for a
        perplexity. No gradient.

        Args:
            tokens: ``(B, N)`` token ids, padded after each sentence.
            lengths: ``(B,)`` sentence lengths in ``1..N``; ``None``: all ``N``.
            samples: Number ``S`` of latent samples per sentence.
            chunk: Samples per sentence scored in one batched inside pass (bounds memory).
            generator: Random generator on the tokens' device for the draws.
        """
        check_positive_ints("CompoundPCFG", samples=samples, chunk=chunk)
        lengths = self._inputs(tokens, lengths)
        mu, logvar = self.bottleneck.posterior(self.features(tokens, lengths))  # (B, Z)
        std = torch.exp(0.5 * logvar)
        log_weights = []
        for start in range(0, samples, chunk):
            k = min(chunk, samples - start)
            eps = torch.randn((k, *mu.shape), device=mu.device, dtype=mu.dtype, generator=generator)
            z = (mu + std * eps).reshape(k * mu.shape[0], -1)  # sample-major (k * B, Z)
            grammar = self.grammar(z, tokens.repeat(k, 1))
            log_px = inside_log_likelihood(grammar, lengths.repeat(k))
            log_w = (
                log_px
                + self.bottleneck.log_prob_prior(z)
                - self.bottleneck.log_prob_posterior(z, mu, logvar)
            )
            log_weights.append(log_w.view(k, -1))
        log_weights = torch.cat(log_weights)  # (S, B)
        return -(torch.logsumexp(log_weights, 0) - math.log(samples))

    def predicted_tokens(self, lengths: Tensor) -> Tensor:
        """Tokens each sentence's likelihood predicts, the denominator of a perplexity: its
        words and the end of the sentence (``lengths + 1``). The grammar generates the end
        implicitly (it is a distribution over whole strings) and it is counted, as URNNG and
        the LSTM language model count their ``</s>``, so the perplexities compare.

        Args:
            lengths: ``(B,)`` sentence lengths.
        """
        return lengths + 1

    # -- parsing ------------------------------------------------------------------------------
    @torch.no_grad()
    def span_marginals(
        self, tokens: Tensor, lengths: Tensor | Sequence[int] | None = None
    ) -> Tensor:
        """Unlabeled span marginals ``p((i, j) is a constituent | x, z = E_q[z])``, ``(B, N, N)``.

        Args:
            tokens: ``(B, N)`` token ids, padded after each sentence.
            lengths: ``(B,)`` sentence lengths in ``1..N``; ``None``: all ``N``.
        """
        lengths = self._inputs(tokens, lengths)
        mu, _ = self.bottleneck.posterior(self.features(tokens, lengths))
        return span_marginals(self.grammar(mu, tokens), lengths)

    @torch.no_grad()
    def parse(
        self, tokens: Tensor, lengths: Tensor | Sequence[int] | None = None
    ) -> list[list[Span]]:
        """MBR trees at ``z = E_q[z]`` as span sets (leaves included; see
        :mod:`seqae.tree.trees`), one per sentence.

        Args:
            tokens: ``(B, N)`` token ids, padded after each sentence.
            lengths: ``(B,)`` sentence lengths in ``1..N``; ``None``: all ``N``.
        """
        lengths = self._inputs(tokens, lengths)
        trees = mbr_trees(self.span_marginals(tokens, lengths), lengths)
        return indicators_to_spans(trees, lengths)
