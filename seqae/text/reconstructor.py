"""The article reconstructor: summary -> article, whose log-likelihood of the true article is the
generator's reconstruction reward.

The same attentive encoder-decoder as the generator (a GRU or LSTM, :mod:`seqae.text.seq2seq`,
or a BART or T5, :mod:`seqae.text.backbones`), with a copy switch over the *summary*: summaries and articles share the article's extended vocabulary
(a sampled summary's extended ids name the article's out-of-vocabulary words), so an article
word the vocabulary lacks can be rebuilt when the summary carries it. An article's
out-of-vocabulary word that the summary lacks cannot be rebuilt and is scored as ``<unk>``
(:meth:`Reconstructor.score_targets`). ``copy=False`` gives a plain attention seq2seq over
the vocabulary (every extended id then reads as ``<unk>``).

    >>> rec = Reconstructor(vocab_size=tok.vocab_size)
    >>> article = tok.extend_targets(article_words, src.oov_words).extended_ids  # words + </s>
    >>> summary = gen.sample(src, max_words=20)               # or Summaries(ids, lengths, n)
    >>> reward = rec.log_likelihood(summary, article)          # (B,) nats, summed over tokens
    >>> loss = token_cross_entropy(rec(summary, article), rec.score_targets(summary, article),
    ...                            pad_id=tok.pad_id)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from seqae.core.saving import SavedByConfig
from seqae.text.backbones import build_pointer_layers
from seqae.text.seq2seq import (
    Source,
    embed_soft,
    in_vocab,
    init_token_model,
    lengths_mask,
    masked_log,
    pointer_distribution,
    stack_steps,
)

__all__ = ["Reconstructor"]


class Reconstructor(SavedByConfig, nn.Module):
    """Summary -> article with attention (and copying from the summary).

    Args:
        vocab_size: The tokenizer's vocabulary size (extended ids start there).
        emb_dim: Word embedding size (shared by encoder and decoder; ``backbone="rnn"``).
        hidden: RNN size ``H`` (``backbone="rnn"``).
        layers: RNN layers of the encoder and of the decoder (``backbone="rnn"``).
        dropout: Dropout on embeddings, between RNN layers (a transformer's own dropout), and
            on the output features.
        copy: Mix in a copy distribution over the summary's words (pointer-generator).
        pad_id: ``<pad>`` (never generated).
        unk_id: ``<unk>``.
        bos_id: ``<s>``, the decoder's first input (never generated).
        eos_id: ``</s>``, which ends an article.
        backbone: ``"rnn"`` (the default; fast on a CPU), ``"bart"`` or ``"t5"`` (a
            ``transformers`` encoder-decoder, see :mod:`seqae.text.backbones`; its teacher
            forcing is one causal pass).
        cell: ``"gru"`` (the default) or ``"lstm"`` (``backbone="rnn"``).
        backbone_size: A transformer's sizes: some of ``d_model``, ``layers``, ``heads``,
            ``ffn``, ``max_positions`` (:data:`~seqae.text.backbones.SIZE_DEFAULTS`).
        backbone_config: A transformer's whole ``transformers`` config, as :attr:`config`
            records it.
        pretrained: A local BART or T5 folder (``transformers`` ``save_pretrained``) whose
            weights the model starts from; its vocabulary size and special ids must be the
            tokenizer's. Nothing downloads; :attr:`config` records the architecture, not the
            folder. At most one of ``backbone_size``, ``backbone_config``, ``pretrained``.
    """

    model_type: ClassVar[str] = "summary_reconstructor"

    def __init__(
        self,
        *,
        vocab_size: int = 30_000,
        emb_dim: int = 128,
        hidden: int = 256,
        layers: int = 1,
        dropout: float = 0.0,
        copy: bool = True,
        pad_id: int = 0,
        unk_id: int = 1,
        bos_id: int = 2,
        eos_id: int = 3,
        backbone: str = "rnn",
        cell: str = "gru",
        backbone_size: Mapping[str, int] | None = None,
        backbone_config: Mapping[str, Any] | None = None,
        pretrained: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        init_token_model(
            self,
            "Reconstructor",
            vocab_size=vocab_size,
            emb_dim=emb_dim,
            hidden=hidden,
            layers=layers,
            dropout=dropout,
            pad_id=pad_id,
            unk_id=unk_id,
            bos_id=bos_id,
            eos_id=eos_id,
        )
        self.copy = copy
        # the core, P_vocab over its features and (with copy) p_gen over [s_t; c_t; x_t]
        self.core, self.out, self.switch = build_pointer_layers(
            "Reconstructor",
            copy=copy,
            vocab_size=vocab_size,
            backbone=backbone,
            cell=cell,
            emb_dim=emb_dim,
            hidden=hidden,
            layers=layers,
            dropout=dropout,
            pad_id=pad_id,
            bos_id=bos_id,
            eos_id=eos_id,
            backbone_size=backbone_size,
            backbone_config=backbone_config,
            pretrained=pretrained,
        )

    @property
    def config(self) -> dict[str, Any]:
        """The constructor's arguments: what :meth:`from_config` takes."""
        return {
            "vocab_size": self.vocab_size,
            "dropout": self.dropout,
            "copy": self.copy,
            "pad_id": self.pad_id,
            "unk_id": self.unk_id,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
            **self.core.config,  # backbone, and its cell and sizes or transformers config
        }

    def score_targets(self, summary: Source, article: Tensor) -> Tensor:
        """The article ids the model is scored on: an extended id becomes ``<unk>`` unless the
        model can copy it from the summary.

        Args:
            summary: The summaries (extended ids).
            article: ``(B, T)`` the articles' extended ids ending with ``</s>``, padded.

        Returns:
            ``(B, T)`` ids the output distribution covers.
        """
        oov = article >= self.vocab_size
        if self.copy:
            summary_ids = summary.ids.to(article.device)
            valid = lengths_mask(summary.lengths.to(article.device), summary_ids.shape[1])
            present = (article[:, :, None] == summary_ids[:, None, :]) & valid[:, None, :]
            oov = oov & ~present.any(dim=-1)  # (B, T)
        return article.masked_fill(oov, self.unk_id)

    def forward(self, summary: Source, article: Tensor) -> Tensor:
        """Teacher-forced log-probabilities of the article's next token.

        Args:
            summary: The summaries (the generator's ``Sampled``/``Decoded``, or
                :class:`~seqae.text.seq2seq.Summaries`). A ``Sampled`` from
                ``gumbel_sample`` is read through its ``soft`` one-hots, so the loss
                reaches the generator.
            article: ``(B, T)`` the articles' extended ids *without* ``<s>``, ending with
                ``</s>``, padded (``extend_targets(article_words, oov_words).extended_ids``).

        Returns:
            ``(B, T, V + max_oovs)`` log-probabilities (``(B, T, V)`` without copying), floored
            at ``log(1e-30)``; score them against :meth:`score_targets`.
        """
        source = summary.ids.to(article.device)  # (B, S) extended ids
        soft = getattr(summary, "soft", None)  # straight-through one-hots: gradient to the writer
        memory, state = self.core.encode(
            in_vocab(source, self.vocab_size, self.unk_id),
            summary.lengths.to(article.device),
            embedded=None if soft is None else embed_soft(self.core.embedding, soft, self.unk_id),
        )
        bos = article.new_full((article.shape[0], 1), self.bos_id)
        inputs = in_vocab(torch.cat([bos, article[:, :-1]], dim=1), self.vocab_size, self.unk_id)
        # the decoder reads the article token by token (a transformer: one pass); the output
        # layer and the copy mixture then run once over all positions
        steps = stack_steps(list(self.core.teacher_forced(inputs, state, memory)))
        probs, _ = pointer_distribution(
            self.out, self.switch, self.never, steps, source, summary.max_oovs
        )
        return masked_log(probs)  # (B, T, V')

    def _token_log_likelihood(self, summary: Source, article: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, T)`` log p of each article token (0 at padding) and the ``(B, T)`` mask."""
        targets = self.score_targets(summary, article)
        log_probs = self(summary, article).gather(-1, targets[..., None]).squeeze(-1)  # (B, T)
        mask = article != self.pad_id
        return log_probs.masked_fill(~mask, 0.0), mask

    def log_likelihood(
        self,
        summary: Source,
        article: Tensor,
        *,
        reduction: Literal["sum", "mean"] = "sum",
    ) -> Tensor:
        """Per-example log-likelihood of the article given the summary (the reward).

        Args:
            summary: The summaries.
            article: ``(B, T)`` the articles' extended ids ending with ``</s>``, padded.
            reduction: ``"sum"`` over the article's tokens (nats per article), or ``"mean"``
                per token.

        Returns:
            ``(B,)`` log-likelihoods (with gradient for the reconstructor; detach for a reward).
        """
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        token_ll, mask = self._token_log_likelihood(summary, article)
        total = token_ll.sum(dim=1)
        return total if reduction == "sum" else total / mask.sum(dim=1).clamp(min=1)

    @torch.no_grad()
    def token_accuracy(self, summary: Source, article: Tensor) -> Tensor:
        """``(B,)`` fraction of article tokens whose teacher-forced argmax is right."""
        targets = self.score_targets(summary, article)
        right = (self(summary, article).argmax(dim=-1) == targets) & (article != self.pad_id)
        return right.sum(dim=1) / (article != self.pad_id).sum(dim=1).clamp(min=1)
