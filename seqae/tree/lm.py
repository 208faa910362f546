"""An LSTM language model: the tree plugin's baseline for URNNG's perplexities (Kim et al.
2019, arXiv 1904.03746, compare an RNNG against an LSTM LM on the same data).

Reads the same batches as :class:`~seqae.tree.urnng.URNNG` (``(B, N)`` word ids without
``<s>``/``</s>``, padded, and their lengths) and predicts the same tokens: each word, then
``</s>`` when ``eos_id`` is set. As in the RNNG, ``</s>`` cannot be the first token, so both
models are distributions over non-empty sentences and their perplexities compare::

    lm = TreeLanguageModel(vocab_size=len(vocab), embed_dim=64, hidden_dim=128)
    loss = -lm.log_prob(tokens, lengths).sum() / lm.predicted_tokens(lengths).sum()
    ppl = perplexity(-lm.log_prob(tokens, lengths), lm.predicted_tokens(lengths))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from seqae.core.saving import SavedByConfig
from seqae.tree.checks import check_token_settings
from seqae.tree.crf import as_lengths
from seqae.tree.rnng import append_eos, check_tokens, check_words

__all__ = ["TreeLanguageModel", "perplexity"]


def perplexity(nll: Tensor | Sequence[float], tokens: Tensor | Sequence[int]) -> float:
    """``exp(sum(nll) / sum(tokens))``: the perplexity of a corpus from each sentence's NLL
    (nats) and the number of tokens it predicts (``model.predicted_tokens(lengths)``).

    Raises:
        ValueError: No tokens, or NLL and token counts of different sizes.
    """
    nll = torch.as_tensor(nll, dtype=torch.float64).reshape(-1)
    tokens = torch.as_tensor(tokens, dtype=torch.float64).reshape(-1)
    if nll.shape != tokens.shape:
        raise ValueError(f"perplexity: {nll.numel()} NLL values for {tokens.numel()} token counts")
    total = float(tokens.sum())
    if total <= 0:
        raise ValueError("perplexity: no tokens to average over")
    return math.exp(float(nll.sum()) / total)


class TreeLanguageModel(SavedByConfig, nn.Module):
    """Word-level LSTM language model: ``<s> w_1 .. w_n`` -> ``w_1 .. w_n </s>``.

    Args:
        vocab_size: Number of token ids (the caller maps unknown words to ``<unk>``).
        embed_dim: Word embedding size.
        hidden_dim: LSTM size.
        layers: Stacked LSTM layers (URNNG's baseline: 2).
        dropout: Dropout on embeddings, between layers and before the output layer (training
            only; URNNG: 0.5).
        pad_id: Padding id, never predicted.
        bos_id: ``<s>``, the first input, never predicted.
        eos_id: ``</s>``, predicted after the last word; ``None``: not predicted
            (``p(x | n)``-like: the words only).
        tie_weights: Share the embeddings with the output layer (needs
            ``embed_dim == hidden_dim``).
    """

    model_type: ClassVar[str] = "tree_lm"

    def __init__(
        self,
        *,
        vocab_size: int = 10_000,
        embed_dim: int = 256,
        hidden_dim: int = 256,
        layers: int = 1,
        dropout: float = 0.0,
        pad_id: int = 0,
        bos_id: int = 2,
        eos_id: int | None = 3,
        tie_weights: bool = False,
    ) -> None:
        super().__init__()
        check_token_settings(
            "TreeLanguageModel",
            vocab_size=vocab_size,
            pad_id=pad_id,
            eos_id=eos_id,
            embed_dim=embed_dim,
            hidden_dim=hidden_dim,
            layers=layers,
            dropout=dropout,
            tie_weights=tie_weights,
        )
        if isinstance(bos_id, bool) or not isinstance(bos_id, int) or not 0 <= bos_id < vocab_size:
            raise ValueError(
                f"TreeLanguageModel: bos_id must be an id in 0..{vocab_size - 1}, got {bos_id!r}"
            )
        if bos_id in (pad_id, eos_id):
            raise ValueError("TreeLanguageModel: bos_id must differ from pad_id and eos_id")
        self.vocab_size, self.embed_dim, self.hidden_dim = vocab_size, embed_dim, hidden_dim
        self.layers, self.dropout, self.tie_weights = layers, float(dropout), bool(tie_weights)
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.drop = nn.Dropout(dropout)
        self.lstm = nn.LSTM(
            embed_dim,
            hidden_dim,
            layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.out = None if tie_weights else nn.Linear(hidden_dim, vocab_size)
        self.out_bias = nn.Parameter(torch.zeros(vocab_size)) if tie_weights else None
        ids = torch.arange(vocab_size)
        self.register_buffer("never", (ids == pad_id) | (ids == bos_id), persistent=False)
        self.register_buffer(
            "eos_mask", ids == (-1 if eos_id is None else eos_id), persistent=False
        )

    @property
    def config(self) -> dict[str, Any]:
        """The constructor's arguments: what :meth:`from_config` takes."""
        return {
            "vocab_size": self.vocab_size,
            "embed_dim": self.embed_dim,
            "hidden_dim": self.hidden_dim,
            "layers": self.layers,
            "dropout": self.dropout,
            "pad_id": self.pad_id,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
            "tie_weights": self.tie_weights,
        }

    def predicted_tokens(self, lengths: Tensor) -> Tensor:
        """Tokens each sentence's ``log p`` predicts (its words, and ``</s>`` with ``eos_id``)."""
        return lengths + (self.eos_id is not None)

    def forward(self, tokens: Tensor, lengths: Tensor | Sequence[int] | None = None) -> Tensor:
        """``(B, T)`` log-probability of each predicted token (``T = N + 1`` with ``eos_id``,
        else ``N``), 0 after each sentence's last one.

        Args:
            tokens: ``(B, N)`` word ids (no ``<s>`` or ``</s>``), padded after each sentence.
            lengths: ``(B,)`` sentence lengths in ``1..N``; ``None``: all ``N``.
        """
        check_tokens("TreeLanguageModel", tokens, self.vocab_size)
        batch, n = tokens.shape
        lengths = as_lengths(
            lengths, batch=batch, n=n, device=tokens.device, who="TreeLanguageModel"
        )
        check_words("TreeLanguageModel", tokens, lengths, pad_id=self.pad_id, eos_id=self.eos_id)
        tokens = tokens.long()
        targets = tokens
        if self.eos_id is not None:
            targets = append_eos(tokens, lengths, self.eos_id, self.pad_id)  # (B, N + 1)
        bos = tokens.new_full((batch, 1), self.bos_id)
        inputs = torch.cat([bos, targets[:, :-1]], dim=1)  # causal: padding comes after
        states, _ = self.lstm(self.drop(self.embed(inputs)))  # (B, T, H)
        states = self.drop(states)
        if self.out is None:
            logits = nn.functional.linear(states, self.embed.weight, self.out_bias)
        else:
            logits = self.out(states)  # (B, T, V)
        first = torch.arange(targets.shape[1], device=tokens.device) == 0
        banned = self.never | (self.eos_mask & first[:, None])  # (T, V): no </s> first
        log_p = torch.log_softmax(logits.masked_fill(banned, float("-inf")), dim=-1)
        log_p = log_p.gather(-1, targets[..., None]).squeeze(-1)  # (B, T)
        real = (
            torch.arange(targets.shape[1], device=tokens.device)
            < (self.predicted_tokens(lengths)[:, None])
        )
        return torch.where(real, log_p, 0.0)

    def log_prob(self, tokens: Tensor, lengths: Tensor | Sequence[int] | None = None) -> Tensor:
        """``log p(sentence)``, ``(B,)`` nats; arguments as :meth:`forward`."""
        return self(tokens, lengths).sum(1)
