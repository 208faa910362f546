"""Tests for seqae.core.vq.VectorQuantizer."""

from __future__ import annotations

import math
import os
import re

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

import seqae.core.vq as vq_module
from seqae.core.base import BottleneckOutput
from seqae.core.vq import VectorQuantizer

LAYOUTS = [  # (shape of h, feature_dim, dim)
    ((5, 8), -1, 8),
    ((3, 7, 8), -1, 8),
    ((3, 8, 7), 1, 8),
    ((2, 8, 4, 5), 1, 8),
    ((2, 3, 4, 8), -1, 8),
]


def _clustered(
    n_clusters: int, per_cluster: int, dim: int, *, scale: float, noise: float, seed: int
):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_clusters, dim, generator=g) * scale
    x = centres.repeat_interleave(per_cluster, 0) + noise * torch.randn(
        n_clusters * per_cluster, dim, generator=g
    )
    return centres, x[torch.randperm(x.shape[0], generator=g)]


#: The defaults before k-means initialisation and dead-code restarts were turned on.
OFF = dict(kmeans_init=False, dead_code_threshold=0.0)


def _buffers(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


# --------------------------------------------------------------------------------------------
# shapes, lookup, prior
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ema", [True, False])
@pytest.mark.parametrize(("shape", "feature_dim", "dim"), LAYOUTS)
def test_shapes_and_lookup(shape, feature_dim, dim, ema):
    torch.manual_seed(0)
    vq = VectorQuantizer(dim=dim, codebook_size=16, feature_dim=feature_dim, ema=ema)
    h = torch.randn(shape)
    out = vq(h)
    assert isinstance(out, BottleneckOutput)
    assert out.z.shape == h.shape
    assert out.loss.dim() == 0
    idx = out.info["indices"]
    expected_idx_shape = list(shape)
    del expected_idx_shape[feature_dim]
    assert idx.shape == tuple(expected_idx_shape) and idx.dtype == torch.long
    vq.eval()
    out = vq(h)
    # the forward value of z is the code itself, laid out like h
    torch.testing.assert_close(out.z, vq.lookup(out.info["indices"]))
    assert vq.code_size == dim
    for key in ("perplexity", "usage", "dead_codes", "commitment"):
        assert out.info[key].dim() == 0 and not out.info[key].requires_grad


@pytest.mark.parametrize("feature_dim", [-1, 1])
def test_sample_prior_layout_and_values(feature_dim):
    vq = VectorQuantizer(dim=6, codebook_size=10, feature_dim=feature_dim)
    s = vq.sample_prior(4, positions=(3, 5))
    assert s.shape == ((4, 3, 5, 6) if feature_dim == -1 else (4, 6, 3, 5))
    vectors = s.movedim(feature_dim, -1).reshape(-1, 6)
    # every sampled vector is a row of the codebook
    assert (vectors[:, None, :] == vq.codebook[None]).all(dim=-1).any(dim=-1).all()
    assert vq.sample_prior(2).shape == (2, 6)
    assert vq.sample_prior(2, dtype=torch.float64).dtype == torch.float64


# --------------------------------------------------------------------------------------------
# nearest code, straight-through, losses
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ema", [True, False])
def test_nearest_code_matches_brute_force(ema):
    torch.manual_seed(1)
    vq = VectorQuantizer(dim=16, codebook_size=64, ema=ema).eval()
    h = torch.randn(4, 50, 16) * 2
    idx = vq(h).info["indices"].reshape(-1)
    d = torch.cdist(h.reshape(-1, 16).double(), vq.codebook.detach().double())
    brute = d.argmin(dim=1)
    chosen = d.gather(1, idx[:, None]).squeeze(1)
    torch.testing.assert_close(chosen, d.min(dim=1).values, rtol=1e-5, atol=1e-5)
    assert (idx == brute).float().mean() > 0.99


@pytest.mark.parametrize("feature_dim", [-1, 1])
def test_straight_through_gradient_reaches_input(feature_dim):
    torch.manual_seed(2)
    beta = 0.3
    vq = VectorQuantizer(dim=4, codebook_size=8, commitment_weight=beta, feature_dim=feature_dim)
    h = torch.randn(3, 4, 5) if feature_dim == 1 else torch.randn(3, 5, 4)
    h.requires_grad_(True)
    out = vq(h)
    w = torch.randn_like(h)
    (out.z * w).sum().backward()
    torch.testing.assert_close(h.grad, w)  # identity gradient through the quantiser

    h.grad = None
    vq.eval()
    out = vq(h)
    q = out.z.detach()
    ((out.z * w).sum() + out.loss).backward()
    torch.testing.assert_close(h.grad, w + beta * 2 * (h.detach() - q) / h.numel())


@pytest.mark.parametrize("ema", [True, False])
def test_loss_values(ema):
    torch.manual_seed(3)
    beta = 0.25
    vq = VectorQuantizer(dim=4, codebook_size=8, commitment_weight=beta, ema=ema).eval()
    h = torch.randn(6, 4)
    out = vq(h)
    q = vq.codebook.detach()[out.info["indices"]]
    mse = (h - q).pow(2).mean()
    torch.testing.assert_close(out.info["commitment"], mse)
    torch.testing.assert_close(out.loss, (beta + (0.0 if ema else 1.0)) * mse)


def test_codebook_gradient_without_ema():
    torch.manual_seed(4)
    vq = VectorQuantizer(dim=3, codebook_size=5, ema=False, commitment_weight=0.0).eval()
    h = torch.randn(7, 3)
    out = vq(h)
    out.loss.backward()
    idx = out.info["indices"]
    q = vq.codebook.detach()[idx]
    expected = torch.zeros(5, 3).index_add_(0, idx, 2 * (q - h) / h.numel())
    torch.testing.assert_close(vq.codebook.grad, expected)
    assert isinstance(vq.codebook, torch.nn.Parameter)
    assert "embed" in dict(vq.named_parameters())


# --------------------------------------------------------------------------------------------
# EMA
# --------------------------------------------------------------------------------------------
def test_ema_update_matches_hand_computation():
    decay, eps = 0.5, 1e-5
    vq = VectorQuantizer(**OFF, dim=2, codebook_size=3, decay=decay, eps=eps)
    codebook = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    vq.embed.copy_(codebook)
    vq.embed_sum.copy_(codebook)
    vq.cluster_size.fill_(1.0)
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [9.0, 1.0], [11.0, -1.0]])
    out = vq(h)
    assert out.info["indices"].tolist() == [0, 0, 1, 1]
    torch.testing.assert_close(out.z, codebook[[0, 0, 1, 1]])  # quantised with the old codebook

    # counts [2, 2, 0], sums [[1, 1], [20, 0], [0, 0]]
    size = [0.5 * 1 + 0.5 * 2, 0.5 * 1 + 0.5 * 2, 0.5 * 1 + 0.5 * 0]  # [1.5, 1.5, 0.5]
    sums = [[0.5 * 0 + 0.5 * 1, 0.5 * 0 + 0.5 * 1], [0.5 * 10 + 0.5 * 20, 0.0], [0.0, 0.5 * 10]]
    n = sum(size)
    smoothed = [(s + eps) / (n + 3 * eps) * n for s in size]
    expected = torch.tensor([[v / smoothed[k] for v in sums[k]] for k in range(3)])
    torch.testing.assert_close(vq.cluster_size, torch.tensor(size))
    torch.testing.assert_close(vq.embed_sum, torch.tensor(sums))
    torch.testing.assert_close(vq.codebook, expected)
    # the same in round numbers: code 0 moves to its EMA mean, the unused code 2 stays put
    torch.testing.assert_close(
        vq.codebook, torch.tensor([[1 / 3, 1 / 3], [10.0, 0.0], [0.0, 10.0]]), atol=1e-3, rtol=0
    )
    assert out.info["usage"].item() == pytest.approx(2 / 3)
    assert out.info["perplexity"].item() == pytest.approx(2.0)


# --------------------------------------------------------------------------------------------
# defaults that use the codebook
# --------------------------------------------------------------------------------------------
N_CLUSTERS = 8


def _fit_clusters(seed: int, steps: int, **kwargs) -> tuple[list[set[int]], float]:
    """Train a quantiser of ``N_CLUSTERS`` codes on batches from ``N_CLUSTERS`` well-separated
    clusters (centres 10 apart or more around (10, ..., 10), noise 0.1: like encoder outputs,
    not centred on the N(0, 1) initial codebook); return the codes each cluster's held-out
    vectors get, and the held-out perplexity."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    centres = 10.0 + 4.0 * torch.randn(N_CLUSTERS, 8, generator=g)
    for _ in range(100):  # redraw until every pair of centres is at least 10 apart
        if torch.pdist(centres).min() >= 10.0:
            break
        centres = 10.0 + 4.0 * torch.randn(N_CLUSTERS, 8, generator=g)
    assert torch.pdist(centres).min() >= 10.0

    def sample(per_cluster: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(N_CLUSTERS).repeat_interleave(per_cluster)
        return centres[labels] + 0.1 * torch.randn(len(labels), 8, generator=g), labels

    vq = VectorQuantizer(dim=8, codebook_size=N_CLUSTERS, **kwargs)
    for _ in range(steps):
        vq(sample(16)[0])
    x, labels = sample(64)
    out = vq.eval()(x)
    idx = out.info["indices"]
    return [set(idx[labels == c].tolist()) for c in range(N_CLUSTERS)], out.info[
        "perplexity"
    ].item()


@pytest.mark.parametrize("seed", range(4))
def test_old_defaults_merge_clusters_and_new_defaults_do_not(seed):
    # before: random codebook, no k-means, no restarts -> the code nearest to the data takes
    # every cluster (one code for all eight in each of these seeds), the others never move
    codes, perplexity = _fit_clusters(seed, steps=60, **OFF)
    assert len(set().union(*codes)) <= 2
    assert perplexity < 2.0
    # now: VectorQuantizer(dim=..., codebook_size=...) and nothing else
    codes, perplexity = _fit_clusters(seed, steps=60)
    assert all(len(c) == 1 for c in codes)  # each cluster on one code ...
    assert len(set().union(*codes)) == N_CLUSTERS  # ... of its own
    assert perplexity == pytest.approx(N_CLUSTERS, rel=1e-3)


def test_default_dead_code_restart_revives_codes_without_kmeans():
    off_codes, off_perplexity = _fit_clusters(0, steps=400, **OFF)
    codes, perplexity = _fit_clusters(0, steps=400, kmeans_init=False)
    assert len(set().union(*off_codes)) == 1 and off_perplexity < 1.01
    # the unused codes' EMA usage decays from 1 below the default threshold 0.1 in ~230 steps;
    # they restart on batch vectors and take clusters from the code that had merged them all
    # (restarts cannot undo two codes sharing a cluster: that is k-means' job)
    assert len(set().union(*codes)) >= 6
    assert perplexity > 4.0


def test_defaults():
    vq = VectorQuantizer(dim=4, codebook_size=8)
    assert vq.kmeans_init and not vq.initted
    assert vq.dead_code_threshold == vq_module.DEFAULT_DEAD_CODE_THRESHOLD == 0.1


# --------------------------------------------------------------------------------------------
# k-means initialisation
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ema", [True, False])
def test_kmeans_init_finds_cluster_centres_once(ema, monkeypatch):
    calls = []
    real = vq_module._kmeans
    monkeypatch.setattr(vq_module, "_kmeans", lambda *a, **k: calls.append(1) or real(*a, **k))
    torch.manual_seed(5)
    centres, x = _clustered(8, 40, 4, scale=10.0, noise=0.05, seed=5)
    vq = VectorQuantizer(dim=4, codebook_size=8, kmeans_init=True, ema=ema)
    assert not vq.initted

    vq.eval()
    before = _buffers(vq)
    vq(x)  # eval does not initialise
    assert not calls and all(torch.equal(before[k], v) for k, v in _buffers(vq).items())

    vq.train()
    out = vq(x)
    assert len(calls) == 1 and bool(vq.initted)
    d = torch.cdist(centres, vq.codebook.detach())
    assert d.min(dim=1).values.max() < 0.1  # every centre has a code on it
    assert d.min(dim=0).values.max() < 0.1  # every code sits on a centre
    assert out.info["usage"].item() == 1.0
    for _ in range(3):
        vq(x + 100.0)  # far-away data would move the codes if k-means ran again
    assert len(calls) == 1


def test_kmeans_helper_handles_fewer_vectors_than_codes():
    x = torch.randn(5, 3)
    centres, sizes = vq_module._kmeans(x, 8, iters=3)
    assert centres.shape == (8, 3) and sizes.sum().item() == 5
    assert torch.isfinite(centres).all()


# --------------------------------------------------------------------------------------------
# dead codes
# --------------------------------------------------------------------------------------------
def _train_on_offset_data(threshold: float, ema: bool, steps: int = 30):
    torch.manual_seed(6)
    vq = VectorQuantizer(
        dim=4,
        codebook_size=32,
        decay=0.9,
        kmeans_init=False,
        dead_code_threshold=threshold,
        ema=ema,
    )
    _, x = _clustered(16, 16, 4, scale=1.0, noise=0.1, seed=7)
    dead_seen = 0
    for _ in range(steps):
        out = vq(x + 20.0)  # far from every initial code: one code would take all
        dead_seen += int(out.info["dead_codes"])
    return out.info, dead_seen


@pytest.mark.parametrize("ema", [True, False])
def test_dead_code_restart_moves_dead_codes_onto_batch_vectors(ema):
    torch.manual_seed(10)
    threshold = 0.8
    vq = VectorQuantizer(
        dim=2,
        codebook_size=4,
        decay=0.5,
        kmeans_init=False,
        dead_code_threshold=threshold,
        ema=ema,
    )
    codebook = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    with torch.no_grad():
        vq.codebook.copy_(codebook)
        if ema:
            vq.embed_sum.copy_(codebook)
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [9.0, 1.0], [11.0, -1.0], [-1.0, 0.0]])
    out = vq(h)
    # sizes after the EMA: [0.5 + 1.5, 0.5 + 1, 0.5, 0.5]: codes 2 and 3 fall below 0.8
    assert int(out.info["dead_codes"]) == 2
    restarted = vq.codebook.detach()[2:]
    assert (restarted[:, None, :] == h[None]).all(dim=-1).any(dim=-1).all()  # batch vectors
    assert not torch.equal(restarted[0], restarted[1])  # distinct ones
    torch.testing.assert_close(vq.cluster_size, torch.tensor([2.0, 1.5, threshold, threshold]))
    if ema:  # statistics stay consistent: sum / size == code
        torch.testing.assert_close(vq.embed_sum[2:], restarted * threshold)
        # code 0: sum [0, 1] of 3 vectors; EMA sum [0, 0.5] / size 2.0
        torch.testing.assert_close(vq.codebook[0], torch.tensor([0.0, 0.25]), atol=1e-3, rtol=0)
    else:  # live codes are left to the optimiser
        torch.testing.assert_close(vq.codebook[:2], codebook[:2])


@pytest.mark.parametrize("ema", [True, False])
def test_dead_code_restart_revives_codes(ema):
    info_off, dead_off = _train_on_offset_data(0.0, ema)
    info_on, dead_on = _train_on_offset_data(1.0, ema)
    assert dead_off == 0 and dead_on > 0
    assert info_off["usage"].item() <= 2 / 32
    assert info_on["usage"].item() >= 0.4
    assert info_on["perplexity"].item() > 4 * info_off["perplexity"].item()


# --------------------------------------------------------------------------------------------
# eval mode, state dict
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ema", [True, False])
@pytest.mark.parametrize("kmeans_init", [True, False])
def test_eval_is_deterministic_and_changes_no_buffers(ema, kmeans_init):
    torch.manual_seed(8)
    vq = VectorQuantizer(
        dim=4, codebook_size=16, ema=ema, kmeans_init=kmeans_init, dead_code_threshold=2.0
    )
    x = torch.randn(64, 4)
    vq(x)  # one training step
    vq.eval()
    before = _buffers(vq)
    a, b = vq(x * 3 + 1), vq(x * 3 + 1)
    after = _buffers(vq)
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert torch.equal(a.z, b.z) and torch.equal(a.info["indices"], b.info["indices"])
    assert torch.equal(a.loss, b.loss)


@pytest.mark.parametrize("ema", [True, False])
def test_state_dict_round_trip_via_safetensors(ema, tmp_path, monkeypatch):
    torch.manual_seed(9)
    kwargs = dict(dim=4, codebook_size=16, ema=ema, kmeans_init=True, dead_code_threshold=0.5)
    vq = VectorQuantizer(**kwargs)
    for _ in range(3):
        vq(torch.randn(64, 4))
    save_file(vq.state_dict(), tmp_path / "vq.safetensors")

    fresh = VectorQuantizer(**kwargs)
    assert not fresh.initted
    fresh.load_state_dict(load_file(tmp_path / "vq.safetensors"))
    assert bool(fresh.initted)
    for k, v in vq.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k
    x = torch.randn(20, 4)
    torch.testing.assert_close(fresh.eval()(x).z, vq.eval()(x).z)

    calls = []
    monkeypatch.setattr(vq_module, "_kmeans", lambda *a, **k: calls.append(1))
    fresh.train()(torch.randn(64, 4))
    assert not calls  # the loaded initted flag is honoured: no second k-means


# --------------------------------------------------------------------------------------------
# bad inputs and arguments
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("h", "match"),
    [
        (torch.randn(4, 5), r"expected 8 features on axis -1"),
        (torch.randn(4, 8, 5), r"expected 8 features on axis -1.*\(batch, \.\.\., 8\)"),
        (torch.randn(8), "expected shape"),
        (torch.tensor([[float("nan")] * 8]), "NaN or inf"),
        (torch.tensor([[float("inf")] + [0.0] * 7]), "NaN or inf"),
    ],
)
def test_bad_inputs_raise_value_error(h, match):
    vq = VectorQuantizer(dim=8, codebook_size=4)
    before = _buffers(vq)
    with pytest.raises(ValueError, match=match):
        vq(h)
    for k, v in _buffers(vq).items():  # nothing reached the codebook statistics
        assert torch.equal(before[k], v)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("kwargs", [{}, OFF], ids=["defaults", "no_kmeans"])
def test_overflowing_input_is_refused_before_the_codebook_sees_it(training, kwargs):
    vq = VectorQuantizer(dim=8, codebook_size=4, **kwargs).train(training)
    before = _buffers(vq)
    with pytest.raises(ValueError, match="too large: its squared distance to the codebook"):
        vq(torch.full((3, 8), 1e30))
    for k, v in _buffers(vq).items():
        assert torch.equal(before[k], v)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(
    ("shape", "feature_dim"), [((0, 8), -1), ((2, 0, 8), -1), ((2, 8, 0), 1), ((0, 8, 5), 1)]
)
def test_empty_input_is_a_clear_error(shape, feature_dim, training):
    # it used to be reported as an overflow (the mean loss of no vectors is NaN)
    vq = VectorQuantizer(dim=8, codebook_size=4, feature_dim=feature_dim).train(training)
    before = _buffers(vq)
    with pytest.raises(ValueError, match=rf"shape {re.escape(str(shape))} holds no vectors"):
        vq(torch.randn(shape))
    for k, v in _buffers(vq).items():
        assert torch.equal(before[k], v)
    assert not vq.initted  # k-means waits for a batch with vectors in it


def test_integer_input_raises_type_error():
    # the same exception type as every other bottleneck (seqae.core.base.check_features)
    vq = VectorQuantizer(dim=8, codebook_size=4)
    with pytest.raises(TypeError, match="floating-point"):
        vq(torch.randint(0, 3, (4, 8)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="decay"):
        VectorQuantizer(dim=4, codebook_size=8, decay=1.0)
    with pytest.raises(ValueError, match="codebook_size"):
        VectorQuantizer(dim=4, codebook_size=0)
    with pytest.raises(ValueError, match="feature_dim"):
        VectorQuantizer(dim=4, codebook_size=8, feature_dim=0)
    with pytest.raises(TypeError):
        VectorQuantizer(4, 8)  # keyword-only


# --------------------------------------------------------------------------------------------
# distributed (2 processes, gloo, CPU)
# --------------------------------------------------------------------------------------------
_DIST_CONFIGS = {
    # name: (constructor kwargs, sync_distributed)
    "full": (dict(kmeans_init=True, dead_code_threshold=2.0, decay=0.5), True),
    "full_nosync": (dict(kmeans_init=True, dead_code_threshold=2.0, decay=0.5), False),
    "grad": (dict(ema=False, kmeans_init=True, dead_code_threshold=2.0, decay=0.5), True),
    "plain": (dict(decay=0.8, kmeans_init=False, dead_code_threshold=0.0), True),
}
_DIST_STEPS = 6


def _rank_batch(rank: int, step: int) -> torch.Tensor:
    """Different data (and batch size) on every rank and step; clusters move between steps."""
    _, x = _clustered(6, 10 + 4 * rank, 3, scale=3.0, noise=0.2, seed=1000 * rank + step)
    return x


def _dist_worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        results = {}
        for name, (kwargs, sync) in _DIST_CONFIGS.items():
            torch.manual_seed(100 + rank)  # ranks start from different codebooks and RNG states
            vq = VectorQuantizer(dim=3, codebook_size=24, sync_distributed=sync, **kwargs)
            dead = 0
            for step in range(_DIST_STEPS):
                dead += int(vq(_rank_batch(rank, step)).info["dead_codes"])
            results[name] = {"state": _buffers(vq), "dead": dead}
        # the restart candidates: one vector per code, drawn from all ranks, the same everywhere
        candidates = vq._restart_candidates(_rank_batch(rank, 0), world)
        dist.all_reduce(candidates)
        results["candidates"] = candidates
        torch.save(results, f"{out_file}.{rank}")
    finally:
        dist.destroy_process_group()
    os._exit(0)  # skip the slow interpreter teardown of torch (results are saved)


def test_two_process_gloo_keeps_codebooks_identical(tmp_path):
    world = 2
    out_file = str(tmp_path / "result")
    mp.spawn(_dist_worker, args=(world, str(tmp_path / "init"), out_file), nprocs=world, join=True)
    r0, r1 = (torch.load(f"{out_file}.{r}") for r in range(world))

    for name in ("full", "grad", "plain"):
        s0, s1 = r0[name]["state"], r1[name]["state"]
        for k in s0:
            assert torch.equal(s0[k], s1[k]), f"{name}: {k} differs between ranks"
    assert r0["full"]["dead"] > 0 and r0["full"]["dead"] == r1["full"]["dead"]  # restarts ran
    assert r0["grad"]["dead"] > 0
    c0, c1 = r0["candidates"], r1["candidates"]
    assert torch.equal(c0, c1)
    union = [_rank_batch(r, 0) for r in range(world)]
    for r in range(world):  # rank r supplied codes r, r + world, ... from its own batch
        rows = c0[r::world]
        assert (rows[:, None, :] == union[r][None]).all(dim=-1).any(dim=-1).all()

    # without sync the ranks drift apart: the test above proves the sync does something
    assert not torch.equal(r0["full_nosync"]["state"]["embed"], r1["full_nosync"]["state"]["embed"])

    # statistics are summed over ranks: 2 ranks == 1 process on the union of their batches,
    # starting from rank 0's codebook (broadcast at the first step)
    kwargs, _ = _DIST_CONFIGS["plain"]
    torch.manual_seed(100)
    ref = VectorQuantizer(dim=3, codebook_size=24, **kwargs)
    for step in range(_DIST_STEPS):
        ref(torch.cat([_rank_batch(r, step) for r in range(world)]))
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(r0["plain"]["state"][k], v, rtol=1e-5, atol=1e-5)
    assert not math.isclose(ref.cluster_size.sum().item(), 0.0)
