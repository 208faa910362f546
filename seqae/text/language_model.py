"""A small word-level language model of summaries, to measure how readable generated summaries
are.

A summarizer trained against a discriminator can learn to please that discriminator without
writing language people would write; the discriminator's own scores therefore say little about
readability. This model is trained on the real *training* summaries only, never sees the
summarizer, and is the judge at evaluation time: the perplexity it gives a system's test
summaries (:func:`perplexity`) is low when the word sequences are ones people write, and high
for word salad or a private code.

:class:`SummaryLanguageModel` is an embedding, a unidirectional GRU and a linear layer over the
:class:`~seqae.text.tokenizer.WordTokenizer`'s vocabulary. It reads ``<s>`` and the words and
predicts the words and ``</s>``; a word outside the vocabulary (an extended id ``>=
vocab_size`` that a pointer-generator copied, see :func:`~seqae.text.seq2seq.in_vocab`) is read
and predicted as ``<unk>``.

    >>> lm = train_language_model(tok, summary_words, emb_dim=64, hidden=128, layers=1,
    ...                           dropout=0.1, steps=2000, batch_size=32, lr=2e-3, seed=0)
    >>> perplexity(lm, tok, ["the cat sat on the mat ."])     # exp(nats per token, </s> incl.)
    >>> lm.save_pretrained("runs/x/parts/language_model")     # seqae.load_pretrained reads it
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from seqae.core.saving import SavedByConfig
from seqae.metrics.reconstruction import evaluating, model_device
from seqae.text.seq2seq import TINY, in_vocab, init_token_model, lengths_mask
from seqae.text.tokenizer import WordTokenizer

__all__ = [
    "SummaryLanguageModel",
    "SequenceNLL",
    "train_language_model",
    "sequence_nll",
    "perplexity",
]


class SummaryLanguageModel(SavedByConfig, nn.Module):
    """Word-level GRU language model: ``<s> w_1 .. w_n`` -> ``w_1 .. w_n </s>``.

    Args:
        vocab_size: The tokenizer's vocabulary size (ids from here on are read as ``<unk>``).
        emb_dim: Word embedding size.
        hidden: GRU size.
        layers: Stacked GRU layers.
        dropout: Dropout on the embeddings, between GRU layers and before the output layer
            (training only).
        pad_id: ``<pad>`` (never predicted; its embedding stays zero).
        unk_id: ``<unk>``, what out-of-vocabulary ids become.
        bos_id: ``<s>``, the first input (never predicted).
        eos_id: ``</s>``, the last prediction of every text.
    """

    model_type: ClassVar[str] = "summary_lm"

    def __init__(
        self,
        *,
        vocab_size: int = 30_000,
        emb_dim: int = 64,
        hidden: int = 128,
        layers: int = 1,
        dropout: float = 0.0,
        pad_id: int = 0,
        unk_id: int = 1,
        bos_id: int = 2,
        eos_id: int = 3,
    ) -> None:
        super().__init__()
        init_token_model(
            self,
            "SummaryLanguageModel",
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
        if len({pad_id, bos_id, eos_id}) < 3 or unk_id in (pad_id, bos_id):
            raise ValueError(
                "SummaryLanguageModel: pad_id, bos_id and eos_id must differ and unk_id must "
                f"differ from pad_id and bos_id, got pad={pad_id} unk={unk_id} bos={bos_id} "
                f"eos={eos_id}"
            )
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.drop = nn.Dropout(dropout)
        self.rnn = nn.GRU(
            emb_dim, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0
        )
        self.out = nn.Linear(hidden, vocab_size)

    @property
    def config(self) -> dict[str, Any]:
        """The constructor's arguments: what :meth:`from_config` takes."""
        return {
            "vocab_size": self.vocab_size,
            "emb_dim": self.emb_dim,
            "hidden": self.hidden,
            "layers": self.layers,
            "dropout": self.dropout,
            "pad_id": self.pad_id,
            "unk_id": self.unk_id,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
        }

    def _checked(self, targets: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        if targets.dim() != 2 or lengths.shape != targets.shape[:1]:
            raise ValueError(
                f"SummaryLanguageModel: expected targets (B, T) and lengths (B,), got "
                f"{tuple(targets.shape)} and {tuple(lengths.shape)}"
            )
        if targets.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"SummaryLanguageModel: targets must be integer ids, got {targets.dtype}"
            )
        if targets.numel() and int(targets.min()) < 0:
            raise ValueError(f"SummaryLanguageModel: ids must be >= 0, got {int(targets.min())}")
        lengths = lengths.to(targets.device)
        if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > targets.shape[1]):
            raise ValueError(
                f"SummaryLanguageModel: every text needs 1 to {targets.shape[1]} tokens (its "
                f"</s> included); got lengths {lengths.tolist()}"
            )
        return in_vocab(targets.long(), self.vocab_size, self.unk_id), lengths

    def forward(self, targets: Tensor, lengths: Tensor) -> Tensor:
        """Log-probabilities of each next token.

        Args:
            targets: ``(B, T)`` the texts' ids *without* ``<s>``, ending with ``</s>``, padded
                (``tokenizer.extend_targets(words, oov_words).ids`` or its extended ids; ids
                ``>= vocab_size`` are read as ``<unk>``). The model reads ``<s>`` then
                ``targets[:, :-1]``.
            lengths: ``(B,)`` tokens of each text, its ``</s>`` included (>= 1).

        Returns:
            ``(B, T, V)`` log-probabilities, floored at ``log(1e-30)`` (finite everywhere).
        """
        targets, _ = self._checked(targets, lengths)
        bos = targets.new_full((targets.shape[0], 1), self.bos_id)
        inputs = torch.cat([bos, targets[:, :-1]], dim=1)  # (B, T)
        states, _ = self.rnn(self.drop(self.embedding(inputs)))  # (B, T, H)
        logits = self.out(self.drop(states)).masked_fill(self.never, float("-inf"))  # (B, T, V)
        return torch.log_softmax(logits, dim=-1).clamp_min(math.log(TINY))

    def token_log_probs(self, targets: Tensor, lengths: Tensor) -> Tensor:
        """``(B, T)`` log-probability of each target token (an out-of-vocabulary one as
        ``<unk>``), 0 at padding. Arguments as :meth:`forward`."""
        ids, lengths = self._checked(targets, lengths)
        log_p = self(ids, lengths).gather(-1, ids[..., None]).squeeze(-1)  # (B, T)
        return log_p.masked_fill(~lengths_mask(lengths, ids.shape[1]), 0.0)

    def nll(self, targets: Tensor, lengths: Tensor) -> Tensor:
        """``(B,)`` negative log-likelihood of each text in nats, summed over its tokens (its
        ``</s>`` included). Arguments as :meth:`forward`."""
        return -self.token_log_probs(targets, lengths).sum(dim=1)


def _words(tokenizer: WordTokenizer, text: str | Sequence[str], index: int, who: str) -> list[str]:
    if isinstance(text, str):
        return tokenizer.tokenize(text).words
    words = list(text)
    if not all(isinstance(w, str) for w in words):
        raise ValueError(f"{who}: text {index} must be a str or a list of words (str)")
    return words


def _encode(
    tokenizer: WordTokenizer, texts: Sequence[str] | Sequence[Sequence[str]], who: str
) -> list[list[int]]:
    """Each text's ids: its words (``<unk>`` outside the vocabulary), then ``</s>``."""
    if isinstance(texts, str) or len(texts) == 0:
        raise ValueError(f"{who}: expected a non-empty sequence of texts or word lists")
    return [
        tokenizer.words_to_ids(_words(tokenizer, text, i, who)) + [tokenizer.eos_id]
        for i, text in enumerate(texts)
    ]


def _padded(rows: Sequence[Sequence[int]], pad_id: int, device: Any) -> tuple[Tensor, Tensor]:
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    ids = torch.full((len(rows), int(lengths.max())), pad_id, dtype=torch.long)
    for b, row in enumerate(rows):
        ids[b, : len(row)] = torch.tensor(row, dtype=torch.long)
    return ids.to(device), lengths.to(device)


def _check_fits(model: SummaryLanguageModel, tokenizer: WordTokenizer, who: str) -> None:
    if model.vocab_size != tokenizer.vocab_size:
        raise ValueError(
            f"{who}: the language model has {model.vocab_size} words but the tokenizer "
            f"{tokenizer.vocab_size}; use the tokenizer it was trained with"
        )


def _index_stream(n: int, rng: random.Random) -> Iterator[int]:
    """Indices ``0..n-1`` in a new random order every epoch, forever."""
    order = list(range(n))
    while True:
        rng.shuffle(order)
        yield from order


def train_language_model(
    tokenizer: WordTokenizer,
    sentences_words: Sequence[Sequence[str]],
    *,
    emb_dim: int,
    hidden: int,
    layers: int,
    dropout: float,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    grad_clip: float = 5.0,
    device: str | torch.device = "cpu",
) -> SummaryLanguageModel:
    """Train a :class:`SummaryLanguageModel` on real summaries (Adam, per-token cross-entropy).

    Deterministic given ``seed`` (on the CPU): the weights and the batches (the sentences in a
    new random order every epoch) depend on nothing else, and the caller's random state is left
    as it was.

    Args:
        tokenizer: The word tokenizer whose vocabulary the model covers.
        sentences_words: The training summaries' words (``tokenizer.tokenize(text).words``),
            cut to the length wanted; an empty list is a text of just ``</s>``.
        emb_dim: Word embedding size.
        hidden: GRU size.
        layers: Stacked GRU layers.
        dropout: Dropout probability in ``[0, 1)``.
        steps: Optimizer steps (>= 0; 0 returns the untrained model).
        batch_size: Sentences per step (>= 1).
        lr: Adam's learning rate (> 0).
        seed: Seed of the initial weights, the batch order and dropout.
        grad_clip: Largest gradient norm (> 0).
        device: Where to train.

    Returns:
        The model, in eval mode, on ``device``.

    Raises:
        ValueError: No sentences, a sentence that is not a list of words, or a bad setting.
    """
    who = "train_language_model"
    for name, value, least in (("steps", steps, 0), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{who}: {name} must be an int >= {least}, got {value!r}")
    for name, value in (("lr", lr), ("grad_clip", grad_clip)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{who}: {name} must be a positive number, got {value!r}")
    if isinstance(sentences_words, str) or len(sentences_words) == 0:
        raise ValueError(f"{who}: expected a non-empty list of sentences (each a list of words)")
    if any(isinstance(s, str) for s in sentences_words):
        raise ValueError(
            f"{who}: each sentence must be a list of words (tokenizer.tokenize(text).words), "
            "not a str"
        )
    rows = _encode(tokenizer, sentences_words, who)
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = SummaryLanguageModel(
            vocab_size=tokenizer.vocab_size,
            emb_dim=emb_dim,
            hidden=hidden,
            layers=layers,
            dropout=dropout,
            pad_id=tokenizer.pad_id,
            unk_id=tokenizer.unk_id,
            bos_id=tokenizer.bos_id,
            eos_id=tokenizer.eos_id,
        ).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        stream = _index_stream(len(rows), random.Random(seed))
        model.train()
        for _ in range(steps):
            ids, lengths = _padded(
                [rows[next(stream)] for _ in range(batch_size)], tokenizer.pad_id, device
            )
            loss = model.nll(ids, lengths).sum() / lengths.sum()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{who}: the loss became {float(loss)}; lower lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
    return model.eval()


class SequenceNLL(NamedTuple):
    """Each text's negative log-likelihood under a language model."""

    #: ``(n,)`` nats per text, summed over its tokens.
    nll: np.ndarray
    #: ``(n,)`` tokens predicted per text: its words and ``</s>``.
    tokens: np.ndarray


def sequence_nll(
    model: SummaryLanguageModel,
    tokenizer: WordTokenizer,
    texts: Sequence[str] | Sequence[Sequence[str]],
    *,
    batch_size: int = 64,
) -> SequenceNLL:
    """Each text's NLL and token count (for a perplexity with a bootstrap interval:
    ``bootstrap_ratio(out.nll, out.tokens)`` gives nats per token, ``exp`` of it perplexity).

    Args:
        model: The language model (run in eval mode, without gradients, on its device).
        tokenizer: The tokenizer it was trained with.
        texts: Texts (tokenized with ``tokenizer.tokenize``) or word lists.
        batch_size: Texts per forward pass (>= 1).

    Raises:
        ValueError: No texts, a vocabulary of another size, or ``batch_size < 1``.
    """
    who = "sequence_nll"
    _check_fits(model, tokenizer, who)
    if batch_size < 1:
        raise ValueError(f"{who}: batch_size must be >= 1, got {batch_size}")
    rows = _encode(tokenizer, texts, who)
    device = model_device(model)
    nll = []
    with evaluating(model):
        for i in range(0, len(rows), batch_size):
            ids, lengths = _padded(rows[i : i + batch_size], tokenizer.pad_id, device)
            nll.append(model.nll(ids, lengths).double().cpu().numpy())
    return SequenceNLL(np.concatenate(nll), np.array([len(r) for r in rows], dtype=np.float64))


def perplexity(
    model: SummaryLanguageModel,
    tokenizer: WordTokenizer,
    texts: Sequence[str] | Sequence[Sequence[str]],
    *,
    batch_size: int = 64,
) -> float:
    """``exp(total NLL / total predicted tokens)`` of the texts, ``</s>`` counted as a token.

    Args:
        model: The language model.
        tokenizer: The tokenizer it was trained with.
        texts: Texts (tokenized with ``tokenizer.tokenize``) or word lists.
        batch_size: Texts per forward pass.
    """
    out = sequence_nll(model, tokenizer, texts, batch_size=batch_size)
    return float(np.exp(out.nll.sum() / out.tokens.sum()))
