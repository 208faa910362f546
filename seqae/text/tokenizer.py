"""A word-level tokenizer trained on the training text, with the extended ids a copy
(pointer-generator) mechanism needs.

Words are what Hugging Face ``tokenizers`` makes of a text after NFKC normalisation and
lowercasing: runs of word characters, and each punctuation mark on its own (``"Don't stop."``
-> ``don ' t stop .``). The vocabulary keeps the most frequent words of the training text (ties
broken alphabetically, so training is deterministic) after the four special tokens, which
always have the ids 0 to 3: ``<pad>``, ``<unk>``, ``<s>``, ``</s>``.

A summary must be able to use an article's rare and unseen words, which the vocabulary lacks.
The pointer-generator (See et al. 2017, "Get to the point", arXiv 1704.04368) gives each such
word a temporary id for that article only: :meth:`WordTokenizer.extend` maps the k-th distinct
out-of-vocabulary word of an article to ``vocab_size + k``, and
:meth:`WordTokenizer.decode_extended` maps those ids back with the article's list of words.

    >>> tok = WordTokenizer.train(train_texts, vocab_size=20_000, min_frequency=2)
    >>> words, n_cut = tok.tokenize(article, max_words=400)
    >>> ext = tok.extend(words)                      # Extended(ids, oov_words)
    >>> tok.decode_extended(summary_ids, ext.oov_words)
    >>> tok.save(model_dir); tok = WordTokenizer.load(model_dir)

The saved folder holds ``tokenizer.json`` and ``tokenizer_config.json``, which
``transformers.PreTrainedTokenizerFast.from_pretrained(folder)`` opens (it gives the same ids
for ordinary text), and ``seqae_tokenizer.json``, which marks it as this tokenizer.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from tokenizers import (
    PreTokenizedString,
    Tokenizer,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)
from torch import Tensor
from transformers import PreTrainedTokenizerFast

from seqae.data.tokens import pad_token_ids
from seqae.errors import UsageError
from seqae.files import atomic_write_bytes, atomic_write_json

__all__ = [
    "SPECIAL_TOKENS",
    "PAD",
    "UNK",
    "BOS",
    "EOS",
    "MARKER_FILE",
    "TokenizerFolderError",
    "TokenizerMissingError",
    "Tokenized",
    "Encoded",
    "Extended",
    "ExtendedBatch",
    "TargetBatch",
    "WordTokenizer",
    "detokenize",
    "as_written",
]

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
#: The special tokens, in the order of their ids (0 to 3).
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, BOS, EOS)

#: The file that marks a folder as holding a :class:`WordTokenizer`.
MARKER_FILE = "seqae_tokenizer.json"
TOKENIZER_FILE = "tokenizer.json"
FORMAT = "seqae.text.tokenizer"
FORMAT_VERSION = 1


class TokenizerFolderError(UsageError, ValueError):
    """A folder does not hold a seqae text tokenizer (missing, damaged, another kind)."""


class TokenizerMissingError(TokenizerFolderError, FileNotFoundError):
    """The folder, or one of the tokenizer's files, does not exist."""


class Tokenized(NamedTuple):
    """The words of a text, after truncation."""

    words: list[str]
    #: How many words ``max_words`` cut off the end (0 when nothing was cut).
    n_truncated: int


class Encoded(NamedTuple):
    """The ids of a text, after truncation."""

    ids: list[int]
    #: How many words ``max_words`` cut off the end (0 when nothing was cut).
    n_truncated: int


class Extended(NamedTuple):
    """One article's ids in its extended vocabulary."""

    #: In-vocabulary words keep their ids; the k-th distinct other word has ``vocab_size + k``.
    ids: list[int]
    #: The article's out-of-vocabulary words, in order of first occurrence.
    oov_words: list[str]


class ExtendedBatch(NamedTuple):
    """A batch of articles, padded with ``<pad>``, in both vocabularies."""

    #: ``(B, T)`` ids with out-of-vocabulary words as ``<unk>`` (what an embedding can take).
    ids: Tensor
    #: ``(B, T)`` ids in each article's extended vocabulary (what the copy distribution uses).
    extended_ids: Tensor
    #: ``(B,)`` number of words of each article.
    lengths: Tensor
    #: Each article's out-of-vocabulary words; ``vocab_size + k`` is ``oov_words[b][k]``.
    oov_words: list[list[str]]
    #: The most out-of-vocabulary words of any article: the extended vocabulary of the batch
    #: has ``vocab_size + max_oovs`` entries.
    max_oovs: int

    def to(self, device: torch.device | str) -> ExtendedBatch:
        """The same batch with its tensors on ``device``."""
        return self._replace(
            ids=self.ids.to(device),
            extended_ids=self.extended_ids.to(device),
            lengths=self.lengths.to(device),
        )


class TargetBatch(NamedTuple):
    """A batch of target texts (summaries), padded with ``<pad>``, in both vocabularies."""

    #: ``(B, T)`` ids with out-of-vocabulary words as ``<unk>`` (the decoder's inputs).
    ids: Tensor
    #: ``(B, T)`` ids where a word missing from the vocabulary but present in the source has
    #: its source's extended id, and ``<unk>`` otherwise (the training targets).
    extended_ids: Tensor
    #: ``(B,)`` number of ids of each target, ``<s>`` and ``</s>`` included.
    lengths: Tensor


# -- detokenization ----------------------------------------------------------------------------

_NO_SPACE_BEFORE = frozenset(".,;:!?)]}%…")
_NO_SPACE_AFTER = frozenset("([{")
_JOINING = frozenset("-/_@")
_NUMBER_JOINING = frozenset(".,:")
_CONTRACTIONS = frozenset({"s", "t", "re", "ve", "ll", "d", "m"})
_QUOTES = frozenset({'"', "'"})


def as_written(text: str, offsets: Sequence[tuple[int, int]], positions: Sequence[int]) -> str:
    """The words at ``positions`` of a text, as the text writes them.

    Each run of consecutive positions is the text's own characters from the run's first word
    to its last (case, spacing and symbols as written: ``/etc/localtime``, ``Foo's``); runs are
    joined by one space. Summaries that pick words of their article read like it this way.

    Args:
        text: The text.
        offsets: Its words' character offsets (:meth:`WordTokenizer.word_offsets`).
        positions: Word positions, increasing.
    """
    runs: list[str] = []
    start = prev = None
    for p in [*positions, None]:
        if p is not None and (p < 0 or p >= len(offsets) or (prev is not None and p <= prev)):
            raise ValueError(
                f"as_written: positions must increase within the text's {len(offsets)} words, "
                f"got {list(positions)}"
            )
        if start is not None and (p is None or p != prev + 1):
            runs.append(text[offsets[start][0] : offsets[prev][1]])
            start = None
        if p is not None and start is None:
            start = p
        prev = p
    return " ".join(runs)


def detokenize(words: Sequence[str]) -> str:
    """Join words into text that reads well: no space before closing punctuation.

    The tokenizer forgets where the spaces were, so this follows the usual conventions:
    ``. , ; : ! ? ) ] } %`` attach to the word before them and ``( [ {`` to the word after;
    ``- / _ @`` join their neighbours (``well-known``, ``and/or``); ``. , :`` between two
    numbers join them (``3.14``, ``1,000``, ``10:30``); an apostrophe before ``s t re ve ll d
    m`` joins a contraction (``don't``, ``it's``); other quotes alternate between opening (space
    before) and closing (space after).

    Args:
        words: The tokens, in order (special tokens are written as they are).

    Returns:
        The text.
    """
    pieces: list[str] = []
    glue_next = False  # the next token attaches to the current one
    open_quotes: dict[str, bool] = {q: False for q in _QUOTES}
    n = len(words)
    for i, word in enumerate(words):
        prev = words[i - 1] if i > 0 else ""
        nxt = words[i + 1] if i + 1 < n else ""
        attach = glue_next
        glue_next = False
        in_number = word in _NUMBER_JOINING and prev.isdigit() and nxt.isdigit()
        contraction = word == "'" and nxt in _CONTRACTIONS and prev[-1:].isalnum()
        if in_number or contraction or word in _JOINING:
            attach = glue_next = True
        elif word in _QUOTES:
            if open_quotes[word]:  # closing
                attach = True
            else:
                glue_next = True
            open_quotes[word] = not open_quotes[word]
        elif word in _NO_SPACE_BEFORE:
            attach = True
        elif word in _NO_SPACE_AFTER:
            glue_next = True
        if pieces and not attach:
            pieces.append(" ")
        pieces.append(word)
    return "".join(pieces)


# -- the tokenizer -----------------------------------------------------------------------------


def _texts(texts: Iterable[str], counter: list[int]) -> Iterator[str]:
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"WordTokenizer.train: text {i} is a {type(text).__name__}; expected str"
            )
        counter[0] += 1
        yield text


def _as_int_list(ids: Any, who: str) -> list[int]:
    if isinstance(ids, Tensor):
        if ids.dim() != 1:
            raise ValueError(f"{who}: expected a 1-d sequence of ids, got shape {tuple(ids.shape)}")
        return [int(i) for i in ids.tolist()]
    if isinstance(ids, str):
        raise TypeError(f"{who}: expected a sequence of ids, got a str")
    return [int(i) for i in ids]


def _tokens(tokens: Sequence[str], who: str) -> list[str]:
    if isinstance(tokens, str):
        raise TypeError(
            f"{who}: expected a sequence of words (from tokenize), got a str; "
            "call tokenize(text) first"
        )
    return list(tokens)


def _pad(rows: Sequence[Sequence[int]], pad_id: int) -> Tensor:
    return pad_token_ids(rows, pad_id=pad_id).ids


class WordTokenizer:
    """A word-level vocabulary over NFKC-normalised, lowercased words and punctuation marks.

    Build one with :meth:`train` or :meth:`load`; the constructor wraps a trained
    ``tokenizers.Tokenizer`` (a ``WordLevel`` model with the four :data:`SPECIAL_TOKENS` as ids
    0 to 3).

    Args:
        tokenizer: The trained ``tokenizers.Tokenizer``.
        min_frequency: The minimum count it was trained with (kept for the saved description).

    Raises:
        TokenizerFolderError: The tokenizer is not word-level, lacks a normaliser or
            pre-tokenizer, or its special tokens are not ids 0 to 3.
    """

    def __init__(self, *, tokenizer: Tokenizer, min_frequency: int | None = None) -> None:
        if not isinstance(tokenizer.model, models.WordLevel):
            raise TokenizerFolderError(
                f"not a word-level tokenizer (its model is {type(tokenizer.model).__name__}, "
                "expected WordLevel)"
            )
        if tokenizer.normalizer is None or tokenizer.pre_tokenizer is None:
            raise TokenizerFolderError("the tokenizer lacks its normalizer or pre-tokenizer")
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        for i, special in enumerate(SPECIAL_TOKENS):
            if vocab.get(special) != i:
                raise TokenizerFolderError(
                    f"the special token {special} has id {vocab.get(special)}, expected {i} "
                    f"(special tokens: {', '.join(SPECIAL_TOKENS)})"
                )
        words = [""] * len(vocab)
        for word, i in vocab.items():
            if not 0 <= i < len(vocab) or words[i]:
                raise TokenizerFolderError("the vocabulary's ids are not 0 to size - 1")
            words[i] = word
        #: The trained ``tokenizers.Tokenizer``.
        self.backend = tokenizer
        self.min_frequency = min_frequency
        self._vocab = vocab
        self._words = words
        #: The same tokenizer as a ``transformers.PreTrainedTokenizerFast``.
        self.fast = PreTrainedTokenizerFast(
            tokenizer_object=tokenizer,
            pad_token=PAD,
            unk_token=UNK,
            bos_token=BOS,
            eos_token=EOS,
            clean_up_tokenization_spaces=False,
        )

    # -- building --------------------------------------------------------------------------

    @classmethod
    def train(
        cls, texts: Iterable[str], *, vocab_size: int = 30_000, min_frequency: int = 2
    ) -> WordTokenizer:
        """Learn the vocabulary from the training texts.

        Args:
            texts: The training texts (any iterable of str; read once).
            vocab_size: Largest vocabulary, the four special tokens included (> 4). Fewer words
                are kept when fewer reach ``min_frequency``.
            min_frequency: A word needs at least this many occurrences to enter the vocabulary
                (>= 1).

        Raises:
            ValueError: A bad size or frequency, no texts, or no word frequent enough.
            TypeError: ``texts`` is a single str, or yields something that is not a str.
        """
        if isinstance(texts, str):
            raise TypeError("WordTokenizer.train: texts must be an iterable of str, not one str")
        if vocab_size <= len(SPECIAL_TOKENS):
            raise ValueError(
                f"WordTokenizer.train: vocab_size must exceed the {len(SPECIAL_TOKENS)} special "
                f"tokens, got {vocab_size}"
            )
        if min_frequency < 1:
            raise ValueError(
                f"WordTokenizer.train: min_frequency must be >= 1, got {min_frequency}"
            )
        tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
        tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation("isolated")]
        )
        trainer = trainers.WordLevelTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            show_progress=False,
        )
        count = [0]
        tokenizer.train_from_iterator(_texts(texts, count), trainer=trainer)
        if count[0] == 0:
            raise ValueError("WordTokenizer.train: no training texts")
        if tokenizer.get_vocab_size(with_added_tokens=True) <= len(SPECIAL_TOKENS):
            raise ValueError(
                f"WordTokenizer.train: no word occurs {min_frequency} times in the "
                f"{count[0]} training texts; the vocabulary would be empty"
            )
        return cls(tokenizer=tokenizer, min_frequency=min_frequency)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the tokenizer into ``directory`` (created if needed), beside a model's files.

        Writes ``tokenizer.json`` and ``tokenizer_config.json`` (what
        ``PreTrainedTokenizerFast.from_pretrained`` reads), then :data:`MARKER_FILE`; each file
        atomically, and the marker last, so an interrupted save is never loaded.

        Args:
            directory: The folder.

        Returns:
            The folder's path.
        """
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise TokenizerFolderError(f"{directory}: exists and is not a folder")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MARKER_FILE).unlink(missing_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            self.fast.save_pretrained(tmp)
            for path in sorted(Path(tmp).iterdir()):
                atomic_write_bytes(directory / path.name, path.read_bytes(), sync_dir=False)
        marker = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "vocab_size": self.vocab_size,
            "min_frequency": self.min_frequency,
            "special_tokens": list(SPECIAL_TOKENS),
        }
        atomic_write_json(directory / MARKER_FILE, marker)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> WordTokenizer:
        """Read a tokenizer written by :meth:`save` (local files only; nothing downloads).

        Args:
            directory: The folder.

        Raises:
            TokenizerMissingError: The folder or one of its files does not exist.
            TokenizerFolderError: The folder holds something else (another model's or another
                tokenizer's files), damaged files, or a format from a newer seqae.
        """
        directory = Path(directory)
        where = f"{directory}: not a seqae text tokenizer folder"
        if not directory.exists():
            raise TokenizerMissingError(f"{where}: it does not exist")
        if not directory.is_dir():
            raise TokenizerFolderError(f"{where}: it is a file")
        marker_path = directory / MARKER_FILE
        if not marker_path.is_file():
            found = sorted(p.name for p in directory.iterdir())
            has = f"it has {', '.join(found)}" if found else "it is empty"
            raise TokenizerMissingError(
                f"{where}: {MARKER_FILE} is missing ({has}); save one with WordTokenizer.save"
            )
        try:
            marker = json.loads(marker_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise TokenizerFolderError(f"{where}: {MARKER_FILE} is unreadable ({err})") from None
        if not isinstance(marker, dict) or marker.get("format") != FORMAT:
            raise TokenizerFolderError(f"{where}: {MARKER_FILE} does not describe one")
        version = marker.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise TokenizerFolderError(
                f"{where}: format_version {version!r} is newer than this seqae reads "
                f"({FORMAT_VERSION}); upgrade seqae"
            )
        tokenizer_path = directory / TOKENIZER_FILE
        if not tokenizer_path.is_file():
            raise TokenizerMissingError(f"{where}: {TOKENIZER_FILE} is missing")
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as err:  # tokenizers raises a bare Exception on a bad file
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise TokenizerFolderError(
                f"{where}: {TOKENIZER_FILE} is unreadable ({first})"
            ) from None
        try:
            loaded = cls(tokenizer=tokenizer, min_frequency=marker.get("min_frequency"))
        except TokenizerFolderError as err:
            raise TokenizerFolderError(f"{where}: {TOKENIZER_FILE}: {err}") from None
        if marker.get("vocab_size") != loaded.vocab_size:
            raise TokenizerFolderError(
                f"{where}: {TOKENIZER_FILE} has {loaded.vocab_size} words but {MARKER_FILE} "
                f"says {marker.get('vocab_size')}; the files are from different saves"
            )
        return loaded

    # -- the vocabulary --------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids, the special tokens included; extended ids start here."""
        return len(self._words)

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def pad_id(self) -> int:
        """Id of ``<pad>`` (0)."""
        return self._vocab[PAD]

    @property
    def unk_id(self) -> int:
        """Id of ``<unk>`` (1)."""
        return self._vocab[UNK]

    @property
    def bos_id(self) -> int:
        """Id of ``<s>`` (2)."""
        return self._vocab[BOS]

    @property
    def eos_id(self) -> int:
        """Id of ``</s>`` (3)."""
        return self._vocab[EOS]

    def __contains__(self, word: object) -> bool:
        return word in self._vocab

    def words_to_ids(self, words: Sequence[str]) -> list[int]:
        """The id of each word, ``<unk>``'s for words outside the vocabulary.

        Args:
            words: Words as :meth:`tokenize` returns them (normalised).
        """
        vocab, unk = self._vocab, self.unk_id
        return [vocab.get(w, unk) for w in _tokens(words, "words_to_ids")]

    def ids_to_words(self, ids: Sequence[int] | Tensor, oov_words: Sequence[str] = ()) -> list[str]:
        """The word of each id; ids from ``vocab_size`` on name ``oov_words[id - vocab_size]``.

        Args:
            ids: Ids (a list or a 1-d tensor).
            oov_words: An article's out-of-vocabulary words (from :meth:`extend`).

        Raises:
            ValueError: An id below 0 or beyond the (extended) vocabulary.
        """
        size = self.vocab_size
        out = []
        for i in _as_int_list(ids, "ids_to_words"):
            if 0 <= i < size:
                out.append(self._words[i])
            elif size <= i < size + len(oov_words):
                out.append(oov_words[i - size])
            else:
                hint = (
                    "; an extended id needs the article's oov_words (decode_extended)"
                    if i >= size and not oov_words
                    else ""
                )
                raise ValueError(
                    f"id {i} is outside the vocabulary of {size} words and "
                    f"{len(oov_words)} out-of-vocabulary words{hint}"
                )
        return out

    # -- text <-> ids ----------------------------------------------------------------------

    def tokenize(self, text: str, *, max_words: int | None = None) -> Tokenized:
        """The normalised words of ``text``, the first ``max_words`` of them.

        Punctuation marks count as words. Text that looks like a special token (``"<s>"``) is
        split like any other text (``< s >``).

        Args:
            text: Any string.
            max_words: Keep at most this many words (>= 1); ``None`` keeps all.

        Returns:
            :class:`Tokenized` ``(words, n_truncated)``: the words kept, and how many were cut
            off the end.
        """
        if not isinstance(text, str):
            raise TypeError(f"tokenize: expected a str, got {type(text).__name__}")
        if max_words is not None and max_words < 1:
            raise ValueError(f"tokenize: max_words must be >= 1 or None, got {max_words}")
        normalized = self.backend.normalizer.normalize_str(text)
        words = [w for w, _ in self.backend.pre_tokenizer.pre_tokenize_str(normalized)]
        if max_words is None or len(words) <= max_words:
            return Tokenized(words, 0)
        return Tokenized(words[:max_words], len(words) - max_words)

    def word_offsets(self, text: str, *, max_words: int | None = None) -> list[tuple[int, int]]:
        """Where each of :meth:`tokenize`'s words lies in ``text``: its ``(start, end)``
        character offsets (``text[start:end]`` is the word as written, before normalisation),
        for the first ``max_words`` words.

        Args:
            text: Any string.
            max_words: At most this many words (>= 1); ``None``: all.
        """
        if not isinstance(text, str):
            raise TypeError(f"word_offsets: expected a str, got {type(text).__name__}")
        if max_words is not None and max_words < 1:
            raise ValueError(f"word_offsets: max_words must be >= 1 or None, got {max_words}")
        pieces = PreTokenizedString(text)
        pieces.normalize(self.backend.normalizer.normalize)
        self.backend.pre_tokenizer.pre_tokenize(pieces)
        splits = pieces.get_splits(offset_referential="original", offset_type="char")
        return [(int(a), int(b)) for _, (a, b), _ in splits[:max_words]]

    def encode(
        self, text: str, *, max_words: int | None = None, bos: bool = False, eos: bool = False
    ) -> Encoded:
        """The ids of ``text``'s words (``<unk>`` for words outside the vocabulary).

        For ordinary text these are the ids ``PreTrainedTokenizerFast`` gives.

        Args:
            text: Any string.
            max_words: Keep at most this many words (``<s>`` and ``</s>`` not counted).
            bos: Start with ``<s>``.
            eos: End with ``</s>``.

        Returns:
            :class:`Encoded` ``(ids, n_truncated)``.
        """
        words, cut = self.tokenize(text, max_words=max_words)
        ids = self.words_to_ids(words)
        return Encoded([self.bos_id] * bos + ids + [self.eos_id] * eos, cut)

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        """Text of ``ids``, read like a sentence (see :func:`detokenize`).

        ``<pad>`` and ``<s>`` are left out and the text ends before the first ``</s>``;
        ``<unk>`` stays visible.

        Args:
            ids: In-vocabulary ids (use :meth:`decode_extended` for extended ids).
        """
        return self.decode_extended(ids, ())

    # -- extended vocabulary (copying) -----------------------------------------------------

    def extend(self, article_tokens: Sequence[str]) -> Extended:
        """An article's ids in its extended vocabulary.

        Words in the vocabulary keep their ids; the k-th distinct other word (k = 0, 1, ...)
        gets ``vocab_size + k`` wherever it occurs in this article.

        Args:
            article_tokens: The article's words, from :meth:`tokenize`.

        Returns:
            :class:`Extended` ``(ids, oov_words)``.
        """
        vocab, size = self._vocab, self.vocab_size
        oov: dict[str, int] = {}
        ids = []
        for word in _tokens(article_tokens, "extend"):
            i = vocab.get(word)
            if i is None:
                i = oov.setdefault(word, size + len(oov))
            ids.append(i)
        return Extended(ids, list(oov))

    def extend_target(self, target_tokens: Sequence[str], oov_words: Sequence[str]) -> list[int]:
        """A target's (summary's) ids in its source article's extended vocabulary.

        Words in the vocabulary keep their ids; a word among the article's ``oov_words`` gets
        its extended id; any other word is ``<unk>`` (it cannot be copied or generated).

        Args:
            target_tokens: The target's words, from :meth:`tokenize`.
            oov_words: The article's out-of-vocabulary words (from :meth:`extend`).
        """
        vocab, size, unk = self._vocab, self.vocab_size, self.unk_id
        position = {w: size + k for k, w in enumerate(oov_words)}
        return [vocab.get(w, position.get(w, unk)) for w in _tokens(target_tokens, "extend_target")]

    def decode_extended(self, ids: Sequence[int] | Tensor, oov_words: Sequence[str]) -> str:
        """Text of ``ids`` in an article's extended vocabulary (see :meth:`decode`).

        Args:
            ids: Ids below ``vocab_size + len(oov_words)``.
            oov_words: The article's out-of-vocabulary words (from :meth:`extend`).

        Raises:
            ValueError: An id outside the extended vocabulary.
        """
        words = []
        for word in self.ids_to_words(ids, oov_words):
            if word == EOS:
                break
            if word not in (PAD, BOS):
                words.append(word)
        return detokenize(words)

    def extend_batch(self, batch_tokens: Sequence[Sequence[str]]) -> ExtendedBatch:
        """:meth:`extend` on each article, padded into tensors.

        Args:
            batch_tokens: Each article's words, from :meth:`tokenize` (at least one article).

        Returns:
            :class:`ExtendedBatch` ``(ids, extended_ids, lengths, oov_words, max_oovs)``.
        """
        if isinstance(batch_tokens, str) or len(batch_tokens) == 0:
            raise ValueError("extend_batch: expected a non-empty sequence of word lists")
        extended = [self.extend(tokens) for tokens in batch_tokens]
        size, unk = self.vocab_size, self.unk_id
        rows = [e.ids for e in extended]
        return ExtendedBatch(
            ids=_pad([[i if i < size else unk for i in r] for r in rows], self.pad_id),
            extended_ids=_pad(rows, self.pad_id),
            lengths=torch.tensor([len(r) for r in rows], dtype=torch.long),
            oov_words=[e.oov_words for e in extended],
            max_oovs=max(len(e.oov_words) for e in extended),
        )

    def extend_targets(
        self,
        batch_tokens: Sequence[Sequence[str]],
        oov_words: Sequence[Sequence[str]],
        *,
        bos: bool = False,
        eos: bool = True,
    ) -> TargetBatch:
        """:meth:`extend_target` on each target, with ``<s>``/``</s>``, padded into tensors.

        Args:
            batch_tokens: Each target's words, from :meth:`tokenize`.
            oov_words: Each source article's out-of-vocabulary words
                (:attr:`ExtendedBatch.oov_words`), in the same order.
            bos: Start each target with ``<s>``.
            eos: End each target with ``</s>`` (default).

        Returns:
            :class:`TargetBatch` ``(ids, extended_ids, lengths)``.
        """
        if isinstance(batch_tokens, str) or len(batch_tokens) == 0:
            raise ValueError("extend_targets: expected a non-empty sequence of word lists")
        if len(oov_words) != len(batch_tokens):
            raise ValueError(
                f"extend_targets: {len(batch_tokens)} targets but {len(oov_words)} lists of "
                "out-of-vocabulary words; give one per target's source article"
            )
        start, end = [self.bos_id] * bos, [self.eos_id] * eos
        rows = [
            start + self.extend_target(tokens, oov) + end
            for tokens, oov in zip(batch_tokens, oov_words, strict=True)
        ]
        size, unk = self.vocab_size, self.unk_id
        return TargetBatch(
            ids=_pad([[i if i < size else unk for i in r] for r in rows], self.pad_id),
            extended_ids=_pad(rows, self.pad_id),
            lengths=torch.tensor([len(r) for r in rows], dtype=torch.long),
        )
