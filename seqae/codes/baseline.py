"""The classical baseline for learned codes: PCA with a uniform scalar quantiser.

:class:`QuantizedPCA`, transform coding with PCA and a uniform scalar quantiser per coefficient
(the Karhunen-Loeve transform code of classical transform coding; Goyal 2001, "Theoretical
foundations of transform coding", IEEE Signal Processing Magazine 18(5)), writes its quantised
coefficients with the same code-file format, so its rates are accounted for the same way.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import torch
from torch import Tensor

from seqae.codes.model import model_hash

__all__ = ["QuantizedPCA"]


class QuantizedPCA:
    """PCA with a uniform scalar quantiser per coefficient: the classical transform code.

    ``x -> c = (x - mean) V_k^T`` (the first ``k`` principal axes, the Karhunen-Loeve
    transform), then each coefficient ``c_j`` is clipped to ``[lo_j, hi_j]`` and quantised to
    one of ``2^bits`` equal cells, reconstructed at the cell centre (Goyal 2001, "Theoretical
    foundations of transform coding"). Codes are integers in ``0..2^bits - 1``, shape ``(N, k)``.

    Args:
        num_components: ``k``, principal axes kept; at most the input size and the number of
            training samples.
        bits: Bits per coefficient, 1..16.
        clip_sigmas: Quantiser range per coefficient: ``None`` uses the training minimum and
            maximum; a float ``a`` uses ``+- a`` standard deviations of that coefficient (a
            narrower range trades clipping error for finer cells at low ``bits``).
    """

    def __init__(self, *, num_components: int, bits: int, clip_sigmas: float | None = None) -> None:
        if not isinstance(num_components, int) or num_components < 1:
            raise ValueError(f"num_components must be a positive int, got {num_components!r}")
        if not isinstance(bits, int) or not 1 <= bits <= 16:
            raise ValueError(f"bits must be an int in 1..16, got {bits!r}")
        if clip_sigmas is not None and not clip_sigmas > 0:
            raise ValueError(f"clip_sigmas must be positive or None, got {clip_sigmas!r}")
        self.num_components, self.bits, self.clip_sigmas = num_components, bits, clip_sigmas
        self.mean: np.ndarray | None = None  # (D,)
        self.components: np.ndarray | None = None  # (k, D)
        self.low: np.ndarray | None = None  # (k,)
        self.high: np.ndarray | None = None  # (k,)

    @property
    def codebook_size(self) -> int:
        """Levels per coefficient, ``2^bits``."""
        return 1 << self.bits

    def fit(self, x: Any, *, basis: tuple[np.ndarray, np.ndarray] | None = None) -> QuantizedPCA:
        """Fit the principal axes and quantiser ranges on training data ``(N, ...)``.

        Args:
            x: Training data.
            basis: ``(mean, axes)`` from :meth:`principal_axes` of the same ``x``, to reuse one
                decomposition across many codecs (a grid of ``k`` and ``bits``).
        """
        data = _as_matrix(x)
        n, d = data.shape
        if self.num_components > min(n, d):
            raise ValueError(
                f"num_components={self.num_components} exceeds min(samples, features) = "
                f"min({n}, {d})"
            )
        mean, axes = basis if basis is not None else self.principal_axes(data)
        if axes.shape[1] != d or axes.shape[0] < self.num_components:
            raise ValueError(
                f"basis axes of shape {axes.shape} do not fit {d} features and "
                f"{self.num_components} components"
            )
        self.mean = np.asarray(mean, dtype=np.float64)
        self.components = np.asarray(axes[: self.num_components], dtype=np.float64)
        coeffs = (data - self.mean) @ self.components.T  # (N, k)
        if self.clip_sigmas is None:
            self.low, self.high = coeffs.min(axis=0), coeffs.max(axis=0)
        else:
            spread = self.clip_sigmas * coeffs.std(axis=0)
            self.low, self.high = -spread, spread
        same = self.high <= self.low
        self.high = np.where(same, self.low + 1e-12, self.high)
        return self

    @staticmethod
    def principal_axes(x: Any) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``(D,)`` and principal axes ``(min(N, D), D)`` of ``x``, by variance, descending."""
        data = _as_matrix(x)
        mean = data.mean(axis=0)
        # torch's SVD follows torch's thread setting (numpy's BLAS threads can thrash on a
        # busy machine)
        _, _, vt = torch.linalg.svd(torch.from_numpy(data - mean), full_matrices=False)
        return mean, vt.numpy()

    def _fitted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self.mean is None or self.components is None or self.low is None or self.high is None:
            raise RuntimeError("QuantizedPCA is not fitted; call fit(x_train) first")
        return self.mean, self.components, self.low, self.high

    def encode(self, x: Any) -> np.ndarray:
        """Quantised coefficients of ``x``: int64 ``(N, k)`` in ``0..2^bits - 1``."""
        mean, comps, low, high = self._fitted()
        data = _as_matrix(x)
        if data.shape[1] != mean.shape[0]:
            raise ValueError(f"expected {mean.shape[0]} features per sample, got {data.shape[1]}")
        step = (high - low) / self.codebook_size
        cells = np.floor(((data - mean) @ comps.T - low) / step)
        return np.clip(cells, 0, self.codebook_size - 1).astype(np.int64)

    def decode(self, codes: Any) -> np.ndarray:
        """Reconstructions ``(N, D)`` float64 from :meth:`encode`'s codes."""
        mean, comps, low, high = self._fitted()
        q = np.asarray(codes, dtype=np.float64)
        step = (high - low) / self.codebook_size
        return mean + (low + (q + 0.5) * step) @ comps

    @property
    def hash(self) -> str:
        """:func:`model_hash` of the fitted transform and quantiser (for code files)."""
        mean, comps, low, high = self._fitted()
        blob = b"".join(a.astype("<f8").tobytes() for a in (mean, comps, low, high)) + struct.pack(
            "<II", self.num_components, self.bits
        )
        return model_hash(blob)


def _as_matrix(x: Any) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    data = np.asarray(x, dtype=np.float64)
    if data.ndim < 2 or data.shape[0] == 0:
        raise ValueError(f"expected data of shape (N, ...) with N >= 1, got shape {data.shape}")
    data = data.reshape(data.shape[0], -1)
    if not np.isfinite(data).all():
        raise ValueError("data holds NaN or infinite values")
    return data
