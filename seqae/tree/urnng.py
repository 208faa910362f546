"""Unsupervised RNNG (Kim et al. 2019, arXiv 1904.03746): text -> latent binary tree -> text.

Two networks in one saved model:

* the inference network ``q(z | x)``: a :class:`~seqae.tree.crf.SpanScorer` (BiLSTM span
  scores) and the :class:`~seqae.tree.crf.TreeCRF` they define;
* the generative model ``p(x, z)``: an :class:`~seqae.tree.rnng.RNNG`.

Training maximises the ELBO ``E_q[log p(x, z)] + H[q]`` (:meth:`URNNG.elbo`): the RNNG by
the plain gradient of ``log p(x, z_k)`` over ``K`` trees drawn from ``q``; ``q`` by the
score-function gradient with each sample's baseline the mean reward of the other ``K - 1``
(leave-one-out), plus the exact gradient of its entropy::

    out = model.elbo(tokens, lengths, samples=8, kl_weight=min(1.0, step / warmup))
    out.loss.backward()          # both networks; out.elbo, out.entropy, ... are detached
    trees = model.parse(tokens, lengths)                  # (B, N, N) MBR span indicators
    nll = model.importance_weighted_nll(tokens, lengths, samples=1000)   # (B,) nats

The two networks are ``model.inference`` and ``model.generative``; URNNG gives them separate
optimisers (``q``: Adam with a small learning rate; the RNNG: SGD), which a recipe builds
from their ``parameters()``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from seqae.core.saving import SavedByConfig
from seqae.tree.checks import check_positive_ints
from seqae.tree.crf import SpanScorer, TreeCRF, as_lengths
from seqae.tree.rnng import RNNG, RNNGOutput, check_tokens
from seqae.tree.trees import indicators_to_actions

__all__ = ["URNNG", "URNNGElbo", "leave_one_out_advantages"]


class URNNGElbo(NamedTuple):
    """The training objective and its detached diagnostics (per sentence: ``(B,)``)."""

    #: scalar to minimise: ``generative_loss + inference_loss``
    loss: Tensor
    #: ``-mean_b mean_k [log p(x|z_k) + w log p(z_k)]`` (the RNNG's part)
    generative_loss: Tensor
    #: ``-mean_b [mean_k A_k log q(z_k|x) + w H[q]]`` (the inference network's part)
    inference_loss: Tensor
    #: ``mean_k log p(x, z_k) + H[q]``: a one-batch estimate of the ELBO (nats)
    elbo: Tensor
    #: ``(B, K)`` ``log p(x, z_k)`` of the sampled trees
    log_joint: Tensor
    #: ``(B, K)`` ``log q(z_k | x)``
    log_q: Tensor
    #: ``mean_k log p(words | z_k)`` (the RNNG's word terms)
    word_log_prob: Tensor
    #: ``mean_k`` of the RNNG's action terms
    action_log_prob: Tensor
    #: exact ``H[q(. | x)]``
    entropy: Tensor
    #: variance over the ``K`` samples of the rewards (unbiased; 0 when ``K = 1``)
    reward_variance: Tensor
    #: ``(B, K, N, N)`` the sampled trees (span indicators)
    trees: Tensor


def leave_one_out_advantages(rewards: Tensor) -> Tensor:
    """``r_k - mean_{j != k} r_j`` along the last dimension (``r_k`` itself when it holds one
    sample: no baseline).

    Args:
        rewards: ``(..., K)`` rewards of ``K`` samples of the same distribution.
    """
    k = rewards.shape[-1]
    if k == 1:
        return rewards
    others = (rewards.sum(-1, keepdim=True) - rewards) / (k - 1)
    return rewards - others


class URNNG(SavedByConfig, nn.Module):
    """URNNG: a tree-CRF inference network and an RNNG generative model over one vocabulary.

    Token ids in (the caller maps unknown words to ``<unk>``), ``(B, N)`` words without
    ``<s>``/``</s>``, padded with ``pad_id``, with their lengths.

    Args:
        vocab_size: Number of token ids (both networks).
        pad_id: Padding id.
        eos_id: ``</s>``, which the RNNG generates after each sentence (``None``: none; see
            :mod:`seqae.tree.rnng`).
        embed_dim: RNNG word and subtree size (URNNG: 650).
        hidden_dim: RNNG stack LSTM size (URNNG: 650).
        layers: RNNG stack LSTM layers (URNNG: 2).
        dropout: RNNG dropout (URNNG: 0.5).
        tie_weights: Tie the RNNG's word embeddings and output layer (needs
            ``embed_dim == hidden_dim``).
        q_embed_dim: Inference network word embedding size.
        q_hidden_dim: Inference network BiLSTM size per direction (URNNG: 256).
        q_mlp_dim: Inference network span MLP size.
        q_dropout: Inference network dropout.
    """

    model_type: ClassVar[str] = "urnng"

    def __init__(
        self,
        *,
        vocab_size: int = 10_000,
        pad_id: int = 0,
        eos_id: int | None = 3,
        embed_dim: int = 256,
        hidden_dim: int = 256,
        layers: int = 1,
        dropout: float = 0.0,
        tie_weights: bool = False,
        q_embed_dim: int = 256,
        q_hidden_dim: int = 256,
        q_mlp_dim: int = 256,
        q_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.generative = RNNG(
            vocab_size=vocab_size,
            embed_dim=embed_dim,
            hidden_dim=hidden_dim,
            layers=layers,
            dropout=dropout,
            pad_id=pad_id,
            eos_id=eos_id,
            tie_weights=tie_weights,
        )
        self.inference = SpanScorer(
            vocab_size=vocab_size,
            embed_dim=q_embed_dim,
            hidden_dim=q_hidden_dim,
            mlp_dim=q_mlp_dim,
            dropout=q_dropout,
            padding_idx=pad_id,
        )
        self.q_embed_dim, self.q_hidden_dim, self.q_mlp_dim = q_embed_dim, q_hidden_dim, q_mlp_dim
        self.q_dropout = float(q_dropout)

    @property
    def config(self) -> dict[str, Any]:
        """The constructor's arguments: what :meth:`from_config` takes."""
        rnng = self.generative.config
        return {
            "vocab_size": rnng["vocab_size"],
            "pad_id": rnng["pad_id"],
            "eos_id": rnng["eos_id"],
            "embed_dim": rnng["embed_dim"],
            "hidden_dim": rnng["hidden_dim"],
            "layers": rnng["layers"],
            "dropout": rnng["dropout"],
            "tie_weights": rnng["tie_weights"],
            "q_embed_dim": self.q_embed_dim,
            "q_hidden_dim": self.q_hidden_dim,
            "q_mlp_dim": self.q_mlp_dim,
            "q_dropout": self.q_dropout,
        }

    def _checked(
        self, tokens: Tensor, lengths: Tensor | Sequence[int] | None
    ) -> tuple[Tensor, Tensor]:
        check_tokens("URNNG", tokens, self.generative.vocab_size)
        batch, n = tokens.shape
        return tokens.long(), as_lengths(
            lengths, batch=batch, n=n, device=tokens.device, who="URNNG"
        )

    def posterior(self, tokens: Tensor, lengths: Tensor | Sequence[int] | None = None) -> TreeCRF:
        """``q(z | x)``: the tree CRF of the inference network's span scores.

        Args:
            tokens: ``(B, N)`` word ids, padded.
            lengths: ``(B,)`` sentence lengths; ``None``: all ``N``.
        """
        tokens, lengths = self._checked(tokens, lengths)
        return TreeCRF(self.inference(tokens, lengths), lengths)

    def joint(self, tokens: Tensor, lengths: Tensor, trees: Tensor) -> RNNGOutput:
        """The RNNG's ``log p(x, z)`` of ``K`` trees per sentence, each part ``(B, K)``.

        Args:
            tokens: ``(B, N)`` word ids.
            lengths: ``(B,)`` long sentence lengths.
            trees: ``(B, K, N, N)`` span indicators.
        """
        batch, k, n, _ = trees.shape
        flat_lengths = lengths.repeat_interleave(k)
        actions = indicators_to_actions(trees.reshape(batch * k, n, n), flat_lengths)
        out = self.generative(tokens.repeat_interleave(k, dim=0), actions, flat_lengths)
        return RNNGOutput(*(part.view(batch, k) for part in out))

    def elbo(
        self,
        tokens: Tensor,
        lengths: Tensor | Sequence[int] | None = None,
        *,
        samples: int = 8,
        kl_weight: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> URNNGElbo:
        """URNNG's training objective on a batch (Kim et al. 2019, section 2.3).

        With ``f_k = log p(x | z_k) + w log p(z_k)`` (the RNNG's word terms plus ``w`` times
        its action terms) for ``K`` trees ``z_k ~ q``:

        * generative loss ``-mean_k f_k``;
        * inference loss ``-mean_k A_k log q(z_k | x) - w H[q]`` with the detached
          advantage ``A_k = f_k - mean_{j != k} f_j`` (score function with a leave-one-out
          baseline; the entropy's gradient is exact).

        ``w = 1`` is the ELBO; URNNG anneals ``w`` from 0 to 1 over its first epochs (a
        warm-up of the KL term ``E_q[log q(z) - log p(z)]``), which the caller does by
        passing ``kl_weight``. Both losses are averaged over the batch (nats per sentence).

        Args:
            tokens: ``(B, N)`` word ids, padded.
            lengths: ``(B,)`` sentence lengths; ``None``: all ``N``.
            samples: Trees ``K`` drawn per sentence (URNNG: 8; ``K = 1`` has no baseline).
            kl_weight: The warm-up weight ``w`` in ``[0, 1]``.
            generator: Random generator (on the tokens' device) for the tree samples.
        """
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"URNNG.elbo: samples must be a positive int, got {samples!r}")
        if not 0.0 <= kl_weight <= 1.0:
            raise ValueError(f"URNNG.elbo: kl_weight must be in [0, 1], got {kl_weight!r}")
        tokens, lengths = self._checked(tokens, lengths)
        crf = TreeCRF(self.inference(tokens, lengths), lengths)
        trees = crf.sample(samples, generator=generator)  # (B, K, N, N)
        log_q = crf.log_prob(trees)  # (B, K)
        entropy = crf.entropy()  # (B,)
        joint = self.joint(tokens, lengths, trees)
        f = joint.word_log_prob + kl_weight * joint.action_log_prob  # (B, K)
        rewards = f.detach()
        advantages = leave_one_out_advantages(rewards)
        generative_loss = -f.mean(1).mean()
        inference_loss = -((advantages * log_q).mean(1) + kl_weight * entropy).mean()
        variance = rewards.var(1) if samples > 1 else torch.zeros_like(entropy)
        return URNNGElbo(
            loss=generative_loss + inference_loss,
            generative_loss=generative_loss,
            inference_loss=inference_loss,
            elbo=(joint.log_prob.mean(1) + entropy).detach(),
            log_joint=joint.log_prob.detach(),
            log_q=log_q.detach(),
            word_log_prob=joint.word_log_prob.mean(1).detach(),
            action_log_prob=joint.action_log_prob.mean(1).detach(),
            entropy=entropy.detach(),
            reward_variance=variance.detach(),
            trees=trees,
        )

    @torch.no_grad()
    def parse(
        self,
        tokens: Tensor,
        lengths: Tensor | Sequence[int] | None = None,
        *,
        method: str = "mbr",
    ) -> Tensor:
        """The inference network's tree of each sentence, ``(B, N, N)`` span indicators
        (:func:`~seqae.tree.trees.indicators_to_spans` gives span sets).

        Args:
            tokens: ``(B, N)`` word ids, padded.
            lengths: ``(B,)`` sentence lengths; ``None``: all ``N``.
            method: ``"mbr"`` (most expected correct spans; URNNG's evaluation uses the
                CRF's argmax) or ``"argmax"`` (the most probable tree, CKY).
        """
        if method not in ("mbr", "argmax"):
            raise ValueError(f"URNNG.parse: method must be 'mbr' or 'argmax', got {method!r}")
        crf = self.posterior(tokens, lengths)
        return crf.mbr() if method == "mbr" else crf.argmax()

    @torch.no_grad()
    def importance_weighted_nll(
        self,
        tokens: Tensor,
        lengths: Tensor | Sequence[int] | None = None,
        *,
        samples: int = 1000,
        chunk: int = 100,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``-log (1/S sum_s p(x, z_s) / q(z_s | x))`` with ``z_s ~ q``, ``(B,)`` nats: an upper
        bound on ``-log p(x)`` in expectation, tightening as ``S`` grows (Burda et al. 2016;
        URNNG's perplexity evaluation, with 1000 samples). Divide the sum over a corpus by
        the sum of :meth:`predicted_tokens` for a perplexity. Call it in eval mode (dropout
        off).

        Args:
            tokens: ``(B, N)`` word ids, padded.
            lengths: ``(B,)`` sentence lengths; ``None``: all ``N``.
            samples: Trees ``S`` per sentence.
            chunk: Trees per sentence scored at once (bounds memory).
            generator: Random generator (on the tokens' device) for the tree samples.
        """
        check_positive_ints("URNNG", samples=samples, chunk=chunk)
        tokens, lengths = self._checked(tokens, lengths)
        crf = TreeCRF(self.inference(tokens, lengths), lengths)
        log_w = []
        for start in range(0, samples, chunk):
            trees = crf.sample(min(chunk, samples - start), generator=generator)
            log_w.append(self.joint(tokens, lengths, trees).log_prob - crf.log_prob(trees))
        return -(torch.logsumexp(torch.cat(log_w, dim=1), dim=1) - math.log(samples))

    def predicted_tokens(self, lengths: Tensor) -> Tensor:
        """Tokens each sentence's likelihood predicts (words, and ``</s>`` with ``eos_id``)."""
        return self.generative.predicted_tokens(lengths)
