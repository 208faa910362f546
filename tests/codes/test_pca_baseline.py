"""seqae.codes.baseline: PCA with a uniform scalar quantiser."""

from __future__ import annotations

import numpy as np
import pytest

from seqae.codes import (
    QuantizedPCA,
)


def test_quantized_pca() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 10))  # rank 6 in 10 dimensions
    errors = []
    for bits in (1, 2, 4, 8, 16):
        codec = QuantizedPCA(num_components=6, bits=bits).fit(x)
        codes = codec.encode(x)
        assert codes.shape == (300, 6) and codes.min() >= 0 and codes.max() < 2**bits
        errors.append(float(np.mean((codec.decode(codes) - x) ** 2)))
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False))  # more bits, less error
    assert errors[-1] < 1e-6 * np.var(x)  # 16 bits on every axis of a rank-6 set: near exact
    basis = QuantizedPCA.principal_axes(x)
    reused = QuantizedPCA(num_components=6, bits=16).fit(x, basis=basis)
    np.testing.assert_array_equal(reused.encode(x), codec.encode(x))  # same decomposition
    clipped = QuantizedPCA(num_components=3, bits=2, clip_sigmas=2.0).fit(x)
    assert clipped.hash != QuantizedPCA(num_components=3, bits=2).fit(x).hash
    assert clipped.codebook_size == 4


def test_quantized_pca_bad_settings() -> None:
    x = np.random.default_rng(0).normal(size=(5, 4))
    with pytest.raises(ValueError, match=r"exceeds min\(samples, features\)"):
        QuantizedPCA(num_components=5, bits=2).fit(x)
    with pytest.raises(ValueError, match="bits"):
        QuantizedPCA(num_components=1, bits=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        QuantizedPCA(num_components=1, bits=2).encode(x)
    with pytest.raises(ValueError, match="expected 4 features"):
        QuantizedPCA(num_components=1, bits=2).fit(x).encode(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        QuantizedPCA(num_components=1, bits=2).fit(np.full((3, 4), np.nan))
