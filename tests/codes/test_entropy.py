"""seqae.codes.entropy: the static and adaptive arithmetic coders, the ideal code length."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqae.codes import (
    adaptive_decode,
    adaptive_encode,
    arithmetic_decode,
    arithmetic_encode,
    empirical_entropy_bits,
)


@pytest.mark.parametrize(
    ("k", "concentration", "n"),
    [(2, 1.0, 3000), (3, 0.2, 3000), (16, 1.0, 5000), (256, 0.3, 5000), (4096, 5.0, 3000)],
)
def test_arithmetic_round_trip_and_near_entropy(k: int, concentration: float, n: int) -> None:
    rng = np.random.default_rng(k)
    p = rng.dirichlet(np.full(k, concentration))
    symbols = rng.choice(k, size=n, p=p)
    freqs = np.bincount(symbols, minlength=k).tolist()
    data = arithmetic_encode(symbols, freqs)
    np.testing.assert_array_equal(arithmetic_decode(data, freqs, n), symbols)
    ideal = empirical_entropy_bits(symbols, k)
    # Witten-Neal-Cleary: at most 2 bits over the ideal length, plus byte padding
    assert ideal - 1e-6 <= 8 * len(data) <= ideal + 2 + 7


def test_arithmetic_single_symbol_and_skipped_zero_frequencies() -> None:
    symbols = np.full(500, 3)
    freqs = [0, 0, 0, 500, 0]
    data = arithmetic_encode(symbols, freqs)
    assert len(data) <= 1  # zero information: only the two termination bits
    np.testing.assert_array_equal(arithmetic_decode(data, freqs, 500), symbols)
    mixed = np.array([1, 4, 4, 1, 4])
    freqs = [0, 2, 0, 0, 3]
    np.testing.assert_array_equal(
        arithmetic_decode(arithmetic_encode(mixed, freqs), freqs, 5), mixed
    )


def test_arithmetic_refuses_uncodable_input() -> None:
    with pytest.raises(ValueError, match="frequency 0"):
        arithmetic_encode([0, 1], [5, 0])
    with pytest.raises(ValueError, match="all be zero"):
        arithmetic_encode([0], [0, 0])
    with pytest.raises(ValueError, match=r"0\.\.1"):
        arithmetic_encode([2], [1, 1])


@pytest.mark.parametrize(("k", "n"), [(1, 100), (2, 3000), (16, 5000), (256, 5000), (4096, 3000)])
def test_adaptive_round_trip_and_near_entropy(k: int, n: int) -> None:
    rng = np.random.default_rng(k + 7)
    symbols = rng.choice(k, size=n, p=rng.dirichlet(np.full(k, 0.5)))
    data = adaptive_encode(symbols, k)
    np.testing.assert_array_equal(adaptive_decode(data, k, n), symbols)
    ideal = empirical_entropy_bits(symbols, k)
    # Krichevsky-Trofimov: the price of learning is about (K - 1)/2 log2 n bits over the
    # empirical entropy (plus O(K) and byte padding)
    assert ideal <= 8 * len(data) <= ideal + (k - 1) / 2 * math.log2(n) + 2 * k + 16


def test_adaptive_halves_its_counts_and_follows_drift() -> None:
    rng = np.random.default_rng(0)
    # 150k symbols (the counts are halved several times), statistics changing half-way
    symbols = np.concatenate([rng.choice(3, 75_000, p=[0.9, 0.05, 0.05]),
                              rng.choice(3, 75_000, p=[0.05, 0.05, 0.9])])  # fmt: skip
    data = adaptive_encode(symbols, 3)
    np.testing.assert_array_equal(adaptive_decode(data, 3, len(symbols)), symbols)
    # halving the counts forgets the first half: the cost (0.80 bits/symbol here) lies between
    # the halves' own entropy (0.57) and the pooled entropy a static model pays (1.23)
    pooled = empirical_entropy_bits(symbols, 3)
    halves = empirical_entropy_bits(symbols[:75_000], 3) + empirical_entropy_bits(
        symbols[75_000:], 3
    )
    assert halves < 8 * len(data) < 0.7 * pooled


def test_adaptive_refuses_large_alphabets() -> None:
    with pytest.raises(ValueError, match="alphabet_size"):
        adaptive_encode([0], 1 << 16)


def test_empirical_entropy_bits() -> None:
    assert empirical_entropy_bits([0, 0, 1, 1], 2) == pytest.approx(4.0)
    assert empirical_entropy_bits([0, 0, 0, 1], 4) == pytest.approx(
        -(3 * math.log2(0.75) + math.log2(0.25))
    )
    assert empirical_entropy_bits([2, 2, 2], 3) == 0.0
