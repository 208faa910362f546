"""seqae.codes.bits: packing symbols at ceil(log2 K) bits each."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqae.codes import (
    bit_width,
    pack_bits,
    unpack_bits,
)


@pytest.mark.parametrize("bits", range(1, 17))
@pytest.mark.parametrize("count", [1, 7, 8, 9, 1001])
def test_pack_round_trip_every_bit_width(bits: int, count: int) -> None:
    rng = np.random.default_rng(bits * 1000 + count)
    values = rng.integers(0, 1 << bits, size=count)
    values[0] = (1 << bits) - 1  # the largest value, all bits set
    if count > 1:
        values[1] = 0
    data = pack_bits(values, bits)
    assert len(data) == math.ceil(count * bits / 8)
    np.testing.assert_array_equal(unpack_bits(data, bits, count), values)


def test_pack_is_msb_first_and_zero_padded() -> None:
    assert pack_bits([1, 0, 1], 1) == bytes([0b10100000])
    assert pack_bits([5, 3], 3) == bytes([0b10101100])
    assert pack_bits([0xABC], 12) == bytes([0xAB, 0xC0])


def test_pack_wide_and_empty_widths() -> None:
    values = np.array([0, 1, 2**32 - 1, 123456789])
    np.testing.assert_array_equal(unpack_bits(pack_bits(values, 32), 32, 4), values)
    assert pack_bits([0, 0, 0], 0) == b""
    np.testing.assert_array_equal(unpack_bits(b"", 0, 3), [0, 0, 0])


def test_pack_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match=r"0\.\.7"):
        pack_bits([8], 3)
    with pytest.raises(ValueError, match="range"):
        pack_bits([-1], 3)
    with pytest.raises(TypeError, match="integers"):
        pack_bits([0.5], 3)
    with pytest.raises(ValueError, match="bits"):
        pack_bits([1], 33)
    with pytest.raises(ValueError, match="need 2 bytes"):
        unpack_bits(b"\x00", 4, 3)


@pytest.mark.parametrize(
    ("k", "bits"), [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (256, 8), (257, 9)]
)
def test_bit_width(k: int, bits: int) -> None:
    assert bit_width(k) == bits
