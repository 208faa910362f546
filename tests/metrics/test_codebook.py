import math

import numpy as np
import pytest
import torch

from seqae.metrics import (
    code_histogram,
    codebook_perplexity,
    codebook_usage,
    perplexity_from_counts,
)


def test_uniform_codes_have_perplexity_k():
    k = 16
    indices = torch.arange(k).repeat(10).reshape(20, 8)
    assert codebook_perplexity(indices, k) == pytest.approx(k)
    usage = codebook_usage(indices, k)
    assert usage.fraction_used == 1.0 and usage.dead_codes == 0 and usage.used == k
    assert usage.dead.numel() == 0


def test_single_code_has_perplexity_one():
    indices = np.full((5, 7), 3)
    assert codebook_perplexity(indices, 10) == pytest.approx(1.0)
    usage = codebook_usage(indices, 10)
    assert usage.fraction_used == pytest.approx(0.1)
    assert usage.dead_codes == 9 and usage.dead.tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert usage.perplexity == pytest.approx(1.0)


def test_known_distribution():
    # p = (1/2, 1/4, 1/4): H = 1.5 log 2, perplexity = 2^1.5
    indices = torch.tensor([0, 0, 1, 2])
    assert codebook_perplexity(indices, 4) == pytest.approx(2**1.5)
    assert code_histogram(indices, 4).tolist() == [2, 1, 1, 0]
    # uniform over a subset of size m -> m, whatever K is
    assert codebook_perplexity(torch.tensor([1, 3, 5] * 4), 100) == pytest.approx(3.0)


def test_per_position():
    # position 0 always code 0, position 1 uniform over 4 codes
    indices = torch.stack([torch.zeros(8, dtype=torch.long), torch.arange(8) % 4], dim=1)
    hist = code_histogram(indices, 4, per_position=True)
    assert hist.shape == (2, 4)
    assert hist.tolist() == [[8, 0, 0, 0], [2, 2, 2, 2]]
    per_pos = codebook_perplexity(indices, 4, per_position=True)
    torch.testing.assert_close(per_pos, torch.tensor([1.0, 4.0], dtype=torch.float64))
    maps = torch.randint(0, 5, (6, 3, 2))  # (B, H, W) code maps
    assert code_histogram(maps, 5, per_position=True).shape == (3, 2, 5)
    assert code_histogram(maps, 5, per_position=True).sum(-1).eq(6).all()


def test_counts_accumulate_over_batches():
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 7, (32, 5), generator=gen) for _ in range(3)]
    total = sum(code_histogram(b, 7) for b in batches)
    expected = codebook_perplexity(torch.cat(batches), 7)
    assert float(perplexity_from_counts(total)) == pytest.approx(expected)
    assert 1.0 <= expected <= 7.0
    p = total.double() / total.sum()
    assert expected == pytest.approx(math.exp(-(p * p.log()).sum().item()))


def test_errors():
    with pytest.raises(ValueError, match=r"in 0\.\.3"):
        codebook_perplexity(torch.tensor([0, 4]), 4)
    with pytest.raises(ValueError, match=r"in 0\.\.3"):
        codebook_usage(torch.tensor([-1, 0]), 4)
    with pytest.raises(TypeError, match="integers"):
        codebook_perplexity(torch.tensor([0.0, 1.0]), 4)
    with pytest.raises(ValueError, match="empty"):
        codebook_perplexity(torch.tensor([], dtype=torch.long), 4)
    with pytest.raises(ValueError, match="codebook_size"):
        codebook_perplexity(torch.tensor([0]), 0)
    with pytest.raises(ValueError, match="position axes"):
        code_histogram(torch.tensor([0, 1]), 2, per_position=True)
    with pytest.raises(ValueError, match="sum to zero"):
        perplexity_from_counts(torch.zeros(3))
