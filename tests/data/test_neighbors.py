"""Nearest-neighbour mining shared by the clustering recipes."""

from __future__ import annotations

import pytest
import torch

from seqae.data.neighbors import nearest_neighbors


def test_neighbors_exclude_self_and_match_brute_force() -> None:
    x = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
    assert nearest_neighbors(x, 1).flatten().tolist() == [1, 0, 1, 2]
    assert nearest_neighbors(x, 2).tolist() == [[1, 2], [0, 2], [1, 0], [2, 1]]
    y = torch.randn(30, 5)
    brute = torch.stack(
        [
            torch.tensor(
                sorted((j for j in range(30) if j != i), key=lambda j: (y[i] - y[j]).norm())[:3]
            )
            for i in range(30)
        ]
    )
    assert torch.equal(nearest_neighbors(y, 3), brute)


def test_neighbors_among_other_candidates_and_bad_k() -> None:
    x = torch.tensor([[0.0], [5.0]])
    among = torch.tensor([[4.0], [0.5], [9.0]])
    assert nearest_neighbors(x, 1, among=among).flatten().tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"k must be in 1\.\.1"):
        nearest_neighbors(x, 2)
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbors(x, 0, among=among)
