"""Word-level token ids: a vocabulary with an unknown word, padded batches, length buckets.

Shared by the plugins that feed words to a model (the tree plugin; the text plugin's
tokenizer pads the same way). The four special tokens have the ids 0 to 3, as in
:mod:`seqae.text.tokenizer`: ``<pad>``, ``<unk>``, ``<s>``, ``</s>``. Words follow by
decreasing training count (ties alphabetically), so the same text gives the same ids::

    vocab = Vocabulary.build(train_sentences, min_count=2)    # rarer words become <unk>
    batch = vocab.batch([["the", "cat", "slept"], ["a", "dog"]], add_eos=True)
    batch.ids          # (2, 4) long, <pad>-padded;  batch.lengths: tensor([4, 3])
    for idx in length_batches([len(s) for s in sentences], batch_size=16, seed=0): ...

A vocabulary saves as a JSON-able dict (:meth:`Vocabulary.to_dict`), e.g. in a saved model's
``config.json`` extras, and comes back with :meth:`Vocabulary.from_dict`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = [
    "BOS",
    "EOS",
    "PAD",
    "SPECIAL_TOKENS",
    "UNK",
    "TokenBatch",
    "Vocabulary",
    "length_batches",
    "pad_token_ids",
]

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
#: The special tokens, in the order of their ids (0 to 3).
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, BOS, EOS)
_FORMAT = "seqae.vocabulary"


class TokenBatch(NamedTuple):
    """Sequences of ids, padded to the longest."""

    #: ``(B, T)`` long ids; positions past a row's length hold the pad id.
    ids: Tensor
    #: ``(B,)`` long: the number of real ids of each row.
    lengths: Tensor

    @property
    def mask(self) -> Tensor:
        """``(B, T)`` bool: True at real (not padding) positions."""
        return torch.arange(self.ids.shape[1], device=self.ids.device) < self.lengths[:, None]

    def to(self, device: torch.device | str) -> TokenBatch:
        """The same batch with its tensors on ``device``."""
        return TokenBatch(self.ids.to(device), self.lengths.to(device))


def pad_token_ids(rows: Sequence[Sequence[int]], *, pad_id: int = 0) -> TokenBatch:
    """Stack id sequences of different lengths into one ``(B, T)`` tensor.

    Args:
        rows: One sequence of ints per row (may be empty; ``T`` is the longest, 0 if all are).
        pad_id: The id written past each row's end.
    """
    lengths = [len(row) for row in rows]
    width = max(lengths, default=0)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for b, row in enumerate(rows):
        if row:
            ids[b, : len(row)] = torch.as_tensor(list(row), dtype=torch.long)
    return TokenBatch(ids, torch.tensor(lengths, dtype=torch.long))


def length_batches(
    lengths: Sequence[int],
    *,
    batch_size: int,
    same_length: bool = True,
    seed: int | None = None,
) -> list[list[int]]:
    """Batches of item indices grouped by length (padding-free batches for chart parsers).

    URNNG and the compound PCFG (Kim et al. 2019) train on batches whose sentences all have
    one length, so that the inside algorithm needs no masks; ``same_length=False`` instead
    fills every batch (but the last) with ``batch_size`` items of neighbouring lengths.

    Args:
        lengths: The length of each item.
        batch_size: Most items per batch (>= 1).
        same_length: Never mix lengths within a batch (batches may then be smaller).
        seed: Shuffle the order of items within a length and the order of the batches with
            this seed; ``None`` keeps the items sorted by (length, index).

    Returns:
        Lists of indices into ``lengths``; every index appears exactly once.
    """
    if batch_size < 1:
        raise ValueError(f"length_batches: batch_size must be >= 1, got {batch_size}")
    rng = random.Random(seed) if seed is not None else None
    order = list(range(len(lengths)))
    if rng is not None:
        rng.shuffle(order)
    order.sort(key=lambda i: lengths[i])  # stable: shuffled (or index) order within a length
    groups: list[list[int]] = []
    if same_length:
        start = 0
        while start < len(order):
            end = start
            while end < len(order) and lengths[order[end]] == lengths[order[start]]:
                end += 1
            same = order[start:end]
            groups += [same[k : k + batch_size] for k in range(0, len(same), batch_size)]
            start = end
    else:
        groups = [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(groups)
    return groups


class Vocabulary:
    """Words <-> ids, with the :data:`SPECIAL_TOKENS` first and ``<unk>`` for unseen words.

    Build one from training sentences with :meth:`build`, or give the words directly.

    Args:
        words: The vocabulary's words, in id order after the special tokens (no special token,
            no duplicates, no empty string).
    """

    #: The ids of the special tokens (the same in every vocabulary).
    pad_id = SPECIAL_TOKENS.index(PAD)
    unk_id = SPECIAL_TOKENS.index(UNK)
    bos_id = SPECIAL_TOKENS.index(BOS)
    eos_id = SPECIAL_TOKENS.index(EOS)

    def __init__(self, words: Sequence[str] = ()) -> None:
        if isinstance(words, str):
            raise TypeError("Vocabulary: words must be a sequence of str, not one str")
        itos = list(SPECIAL_TOKENS)
        stoi = {w: i for i, w in enumerate(itos)}
        for word in words:
            if not isinstance(word, str) or not word:
                raise ValueError(f"Vocabulary: {word!r} is not a word (a non-empty str)")
            if word in stoi:
                what = "a special token" if word in SPECIAL_TOKENS else "repeated"
                raise ValueError(f"Vocabulary: the word {word!r} is {what}")
            stoi[word] = len(itos)
            itos.append(word)
        self._itos = itos
        self._stoi = stoi

    @classmethod
    def build(
        cls,
        sentences: Iterable[Sequence[str]],
        *,
        min_count: int = 1,
        max_size: int | None = None,
    ) -> Vocabulary:
        """The words of training ``sentences`` seen at least ``min_count`` times.

        Args:
            sentences: Tokenized training sentences (lists of words).
            min_count: Fewer occurrences make a word ``<unk>`` (>= 1).
            max_size: Keep at most this many words (the most frequent), specials excluded.
        """
        if min_count < 1:
            raise ValueError(f"Vocabulary.build: min_count must be >= 1, got {min_count}")
        if max_size is not None and max_size < 0:
            raise ValueError(f"Vocabulary.build: max_size must be >= 0, got {max_size}")
        counts: Counter[str] = Counter()
        for sentence in sentences:
            if isinstance(sentence, str):
                raise TypeError(
                    "Vocabulary.build: each sentence must be a list of words, not a str "
                    "(split it first)"
                )
            counts.update(sentence)
        kept = sorted(
            (w for w, c in counts.items() if c >= min_count and w not in SPECIAL_TOKENS),
            key=lambda w: (-counts[w], w),
        )
        return cls(kept if max_size is None else kept[:max_size])

    # -- lookups ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, word: object) -> bool:
        return word in self._stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and other._itos == self._itos

    def __hash__(self) -> int:
        return hash(tuple(self._itos))

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens, {len(self) - len(SPECIAL_TOKENS)} words)"

    @property
    def words(self) -> list[str]:
        """Every token, in id order (the special tokens first)."""
        return list(self._itos)

    def id(self, word: str) -> int:
        """The id of ``word``; ``<unk>``'s id for a word not in the vocabulary."""
        return self._stoi.get(word, self.unk_id)

    def word(self, index: int) -> str:
        """The token with id ``index``."""
        if not 0 <= index < len(self._itos):
            raise IndexError(f"Vocabulary: id {index} is outside 0..{len(self._itos) - 1}")
        return self._itos[index]

    def encode(
        self, words: Sequence[str], *, add_bos: bool = False, add_eos: bool = False
    ) -> list[int]:
        """The ids of ``words`` (unknown words -> ``<unk>``), optionally between ``<s>`` and
        ``</s>``."""
        if isinstance(words, str):
            raise TypeError("Vocabulary.encode: words must be a list of words, not a str")
        ids = [self._stoi.get(w, self.unk_id) for w in words]
        return [self.bos_id] * add_bos + ids + [self.eos_id] * add_eos

    def decode(self, ids: Iterable[int], *, skip_special: bool = True) -> list[str]:
        """The words of ``ids``; ``<pad>``, ``<s>`` and ``</s>`` are left out when
        ``skip_special`` (``<unk>`` is always kept: it stands for a word)."""
        skip = {self.pad_id, self.bos_id, self.eos_id} if skip_special else set()
        return [self.word(int(i)) for i in ids if int(i) not in skip]

    def unknown_rate(self, sentences: Iterable[Sequence[str]]) -> float:
        """The fraction of the words of ``sentences`` that are not in the vocabulary."""
        total = unknown = 0
        for sentence in sentences:
            total += len(sentence)
            unknown += sum(w not in self._stoi for w in sentence)
        return unknown / total if total else 0.0

    def batch(
        self,
        sentences: Sequence[Sequence[str]],
        *,
        add_bos: bool = False,
        add_eos: bool = False,
    ) -> TokenBatch:
        """Encode ``sentences`` and pad them with ``<pad>`` (:func:`pad_token_ids`)."""
        rows = [self.encode(s, add_bos=add_bos, add_eos=add_eos) for s in sentences]
        return pad_token_ids(rows, pad_id=self.pad_id)

    # -- saving ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (:meth:`from_dict` reads it back)."""
        return {
            "format": _FORMAT,
            "special_tokens": list(SPECIAL_TOKENS),
            "words": self._itos[len(SPECIAL_TOKENS) :],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vocabulary:
        """The vocabulary :meth:`to_dict` described.

        Raises:
            ValueError: ``data`` is not such a description (another format, other special
                tokens, bad words).
        """
        if not isinstance(data, Mapping) or data.get("format") != _FORMAT:
            raise ValueError("Vocabulary.from_dict: not a seqae vocabulary description")
        if list(data.get("special_tokens", [])) != list(SPECIAL_TOKENS):
            raise ValueError(
                f"Vocabulary.from_dict: special tokens {data.get('special_tokens')!r}; "
                f"expected {list(SPECIAL_TOKENS)}"
            )
        words = data.get("words")
        if not isinstance(words, list):
            raise ValueError("Vocabulary.from_dict: 'words' must be a list of str")
        return cls(words)
