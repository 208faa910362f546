"""Entropy coding: a static and an adaptive arithmetic coder, and the ideal code length.

:func:`arithmetic_encode` is a 32-bit integer arithmetic code (Witten, Neal & Cleary 1987,
"Arithmetic coding for data compression", CACM 30(6)) under a fixed frequency table, which a
code file stores in its header; :func:`adaptive_encode` codes under a model that learns the
frequencies while coding (the Krichevsky-Trofimov estimator), with no table: the better choice
for small files. :func:`empirical_entropy_bits` is the rate a static coder approaches.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import numpy as np

from seqae.codes.bits import _as_symbols

__all__ = [
    "ADAPTIVE_INCREMENT",
    "adaptive_decode",
    "adaptive_encode",
    "arithmetic_decode",
    "arithmetic_encode",
    "empirical_entropy_bits",
]

_MAX_ARITHMETIC_SYMBOLS = 1 << 16  # the arithmetic coder's alphabet limit
_MAX_TOTAL = 1 << 16  # frequency tables are rescaled to at most this total
_TOP = (1 << 32) - 1
_HALF = 1 << 31
_QUARTER = 1 << 30
ADAPTIVE_INCREMENT = 2  # what one occurrence adds to a symbol's count (each starts at 1)
_ADAPTIVE_LIMIT = 1 << 16  # counts are halved when their total exceeds this


class _BitEncoder:
    """The coder's state: the interval ``[low, high]`` and the bits emitted so far.

    ``encode(c_lo, c_hi, total)`` narrows the interval to the symbol's slice
    ``[c_lo, c_hi) / total`` of it and shifts out every bit the interval has settled, with
    underflow ("pending bit") handling, in 32-bit integer arithmetic.
    """

    def __init__(self) -> None:
        self.low, self.high, self.pending = 0, _TOP, 0
        self.bits: list[int] = []

    def _emit(self, bit: int) -> None:
        self.bits.append(bit)
        if self.pending:
            self.bits.extend([1 - bit] * self.pending)
            self.pending = 0

    def encode(self, c_lo: int, c_hi: int, total: int) -> None:
        low, high = self.low, self.high
        span = high - low + 1
        high = low + span * c_hi // total - 1
        low = low + span * c_lo // total
        bits, pending = self.bits, self.pending
        while True:
            if high < _HALF:
                bits.append(0)
                if pending:
                    bits.extend([1] * pending)
                    pending = 0
            elif low >= _HALF:
                bits.append(1)
                if pending:
                    bits.extend([0] * pending)
                    pending = 0
                low -= _HALF
                high -= _HALF
            elif low >= _QUARTER and high < 3 * _QUARTER:
                pending += 1
                low -= _QUARTER
                high -= _QUARTER
            else:
                break
            low <<= 1
            high = (high << 1) | 1
        self.low, self.high, self.pending = low, high, pending

    def finish(self) -> bytes:
        # two more bits (and the pending ones) name a point inside [low, high]; the decoder
        # reads zeros past the end of the stream
        self.pending += 1
        self._emit(0 if self.low < _QUARTER else 1)
        return np.packbits(np.asarray(self.bits, dtype=np.uint8)).tobytes()


class _BitDecoder:
    """The decoder's mirror of :class:`_BitEncoder`: ``target(total)`` gives the cumulative
    count the next symbol's slice contains, ``consume`` removes that slice."""

    def __init__(self, data: bytes) -> None:
        self.stream = np.unpackbits(np.frombuffer(data, dtype=np.uint8)).tolist()
        value = 0
        for i in range(32):
            value = (value << 1) | (self.stream[i] if i < len(self.stream) else 0)
        self.value, self.pos = value, 32
        self.low, self.high = 0, _TOP

    def target(self, total: int) -> int:
        return ((self.value - self.low + 1) * total - 1) // (self.high - self.low + 1)

    def consume(self, c_lo: int, c_hi: int, total: int) -> None:
        low, high, value = self.low, self.high, self.value
        span = high - low + 1
        high = low + span * c_hi // total - 1
        low = low + span * c_lo // total
        stream, pos, n = self.stream, self.pos, len(self.stream)
        while True:
            if high < _HALF:
                pass
            elif low >= _HALF:
                low -= _HALF
                high -= _HALF
                value -= _HALF
            elif low >= _QUARTER and high < 3 * _QUARTER:
                low -= _QUARTER
                high -= _QUARTER
                value -= _QUARTER
            else:
                break
            low <<= 1
            high = (high << 1) | 1
            value = (value << 1) | (stream[pos] if pos < n else 0)
            pos += 1
        self.low, self.high, self.value, self.pos = low, high, value, pos


def _cumulative(freqs: Sequence[int]) -> list[int]:
    cum = [0]
    for f in freqs:
        if f < 0:
            raise ValueError(f"frequencies must be >= 0, got {f}")
        cum.append(cum[-1] + int(f))
    if cum[-1] == 0:
        raise ValueError("frequencies must not all be zero")
    if cum[-1] > _QUARTER:
        raise ValueError(f"frequencies must sum to at most 2^30, got {cum[-1]}")
    return cum


def arithmetic_encode(symbols: Any, freqs: Sequence[int]) -> bytes:
    """Arithmetic-code ``symbols`` under a static model with the given frequencies.

    A 32-bit integer implementation of Witten, Neal & Cleary (1987, "Arithmetic coding for
    data compression", CACM 30(6)). The output is at most ``sum(-log2 p(s)) + 2`` bits,
    ``p(s) = freqs[s] / sum(freqs)``, rounded up to whole bytes.

    Args:
        symbols: Integers in ``0..len(freqs) - 1``, any shape (read in C order); each must
            have a non-zero frequency.
        freqs: Non-negative integer frequency of each symbol, summing to at most ``2^30``.
    """
    cum = _cumulative(freqs)
    total = cum[-1]
    flat = _as_symbols(symbols, codebook_size=len(freqs))
    coder = _BitEncoder()
    for s in flat.tolist():
        if cum[s] == cum[s + 1]:
            raise ValueError(f"symbol {s} has frequency 0 and cannot be coded")
        coder.encode(cum[s], cum[s + 1], total)
    return coder.finish()


def arithmetic_decode(data: bytes, freqs: Sequence[int], count: int) -> np.ndarray:
    """Decode ``count`` symbols written by :func:`arithmetic_encode` with the same ``freqs``.

    Args:
        data: The coded bytes.
        freqs: The frequencies the encoder used.
        count: Number of symbols to decode.

    Returns:
        int64 array ``(count,)``.
    """
    cum = _cumulative(freqs)
    total = cum[-1]
    coder = _BitDecoder(data)
    out = np.empty(count, dtype=np.int64)
    for i in range(count):
        s = bisect.bisect_right(cum, coder.target(total)) - 1  # cum[s] <= target < cum[s + 1]
        out[i] = s
        coder.consume(cum[s], cum[s + 1], total)
    return out


class _AdaptiveModel:
    """Symbol counts that grow as symbols are coded, in a Fenwick tree (Fenwick 1994, "A new
    data structure for cumulative frequency tables"): O(log K) lookups and updates.

    Every count starts at 1 and grows by :data:`ADAPTIVE_INCREMENT` = 2 per occurrence: the
    estimate ``p(s) = (n_s + 1/2) / (n + K/2)`` after ``n`` symbols, the Krichevsky-Trofimov
    estimator (Krichevsky & Trofimov 1981, "The performance of universal encoding", IEEE
    Trans. Inf. Theory 27(2)), whose cost over the empirical entropy grows only like
    ``(K - 1)/2 log2 n`` bits. All counts are halved (rounding up) when their total passes
    ``2^16``, which keeps the arithmetic exact and lets the model follow drifting statistics.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.freqs = [1] * size
        self.total = size
        self._rebuild()
        self.top = 1 << (size.bit_length() - 1)  # largest power of two <= size

    def _rebuild(self) -> None:
        tree = [0] * (self.size + 1)
        for i, f in enumerate(self.freqs, start=1):
            tree[i] += f
            parent = i + (i & -i)
            if parent <= self.size:
                tree[parent] += tree[i]
        self.tree = tree

    def cumulative(self, s: int) -> int:
        """Sum of the counts of symbols ``0..s-1``."""
        tree, total = self.tree, 0
        while s > 0:
            total += tree[s]
            s -= s & -s
        return total

    def find(self, target: int) -> int:
        """The symbol ``s`` with ``cumulative(s) <= target < cumulative(s + 1)``."""
        tree, pos, step = self.tree, 0, self.top
        while step:
            nxt = pos + step
            if nxt <= self.size and tree[nxt] <= target:
                pos = nxt
                target -= tree[nxt]
            step >>= 1
        return pos

    def update(self, s: int) -> None:
        self.freqs[s] += ADAPTIVE_INCREMENT
        self.total += ADAPTIVE_INCREMENT
        if self.total > _ADAPTIVE_LIMIT:
            self.freqs = [(f + 1) // 2 for f in self.freqs]
            self.total = sum(self.freqs)
            self._rebuild()
            return
        tree, i = self.tree, s + 1
        while i <= self.size:
            tree[i] += ADAPTIVE_INCREMENT
            i += i & -i


def adaptive_encode(symbols: Any, alphabet_size: int) -> bytes:
    """Arithmetic-code ``symbols`` under an adaptive model that learns their frequencies as it
    goes (Witten, Neal & Cleary 1987, Sec. "adaptive models"), so no table is stored.

    Args:
        symbols: Integers in ``0..alphabet_size - 1``, any shape (read in C order).
        alphabet_size: ``K``, at most ``2^15`` (the counts start at 1 and must leave room to
            adapt within the ``2^16`` total).
    """
    if not 1 <= alphabet_size <= _ADAPTIVE_LIMIT // 2:
        raise ValueError(f"alphabet_size must be in 1..{_ADAPTIVE_LIMIT // 2}, got {alphabet_size}")
    flat = _as_symbols(symbols, codebook_size=alphabet_size)
    model, coder = _AdaptiveModel(alphabet_size), _BitEncoder()
    for s in flat.tolist():
        c_lo = model.cumulative(s)
        coder.encode(c_lo, c_lo + model.freqs[s], model.total)
        model.update(s)
    return coder.finish()


def adaptive_decode(data: bytes, alphabet_size: int, count: int) -> np.ndarray:
    """Decode ``count`` symbols written by :func:`adaptive_encode` with the same alphabet."""
    if not 1 <= alphabet_size <= _ADAPTIVE_LIMIT // 2:
        raise ValueError(f"alphabet_size must be in 1..{_ADAPTIVE_LIMIT // 2}, got {alphabet_size}")
    model, coder = _AdaptiveModel(alphabet_size), _BitDecoder(data)
    out = np.empty(count, dtype=np.int64)
    for i in range(count):
        s = model.find(coder.target(model.total))
        out[i] = s
        c_lo = model.cumulative(s)
        coder.consume(c_lo, c_lo + model.freqs[s], model.total)
        model.update(s)
    return out


def _frequency_table(symbols: np.ndarray, codebook_size: int) -> list[int]:
    """Counts of each symbol, rescaled to a total of at most ``2^16`` (present symbols keep >= 1)."""
    counts = np.bincount(symbols, minlength=codebook_size).astype(np.int64)
    total = int(counts.sum())
    if total <= _MAX_TOTAL:
        return counts.tolist()
    budget = _MAX_TOTAL - codebook_size  # + at most one per present symbol: sum <= 2^16
    scaled = counts * budget // total + (counts > 0)
    return scaled.tolist()


def empirical_entropy_bits(codes: Any, codebook_size: int) -> float:
    """Total ideal code length ``-sum log2 p(s)`` of ``codes`` under their own empirical
    distribution, in bits: the rate a static entropy coder approaches, side information excluded.

    Args:
        codes: Integer codes in ``0..codebook_size - 1``, any shape.
        codebook_size: Alphabet size ``K``.
    """
    flat = _as_symbols(codes, codebook_size=codebook_size)
    if flat.size == 0:
        return 0.0
    counts = np.bincount(flat, minlength=codebook_size).astype(np.float64)
    p = counts[counts > 0] / flat.size
    return float(-(counts[counts > 0] * np.log2(p)).sum())
