"""Shared assertion of the recipe tests that train the same steps in float32 and in bf16."""

from __future__ import annotations

import pytest
import torch


def assert_bf16_is_a_rounding(
    weights: dict[str, dict[str, torch.Tensor]], val: dict[str, float]
) -> None:
    """``weights`` and ``val`` (final validation loss) keyed by ``"fp32"`` and ``"bf16"``, from
    the same seed and batches: the bf16 rounding must show in the weights (so the setting reached
    the training step), and stay a rounding, not a divergence."""
    fp32, bf16 = weights["fp32"], weights["bf16"]
    diffs = [(bf16[k] - fp32[k]).abs().max().item() for k in fp32 if fp32[k].is_floating_point()]
    assert all(torch.isfinite(v).all() for v in bf16.values())
    assert max(diffs) > 1e-6
    assert val["bf16"] == pytest.approx(val["fp32"], rel=0.05)
