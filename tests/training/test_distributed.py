"""Single-process behaviour of the DDP helpers, and a real 2-process torchrun run on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from seqae.training import (
    DistributedContext,
    all_reduce_mean,
    init_distributed,
    is_main_process,
    make_loader,
    set_epoch,
    unwrap,
    wrap_model,
)

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def no_torchrun_env(monkeypatch):
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)


def _order(loader) -> list[int]:
    return [int(i) for (batch,) in loader for i in batch]


def _dataset(n: int = 20) -> TensorDataset:
    return TensorDataset(torch.arange(n))


def test_single_process_context(no_torchrun_env) -> None:
    ctx = init_distributed(device_preference="cpu")
    assert (ctx.rank, ctx.world_size, ctx.backend) == (0, 1, None)
    assert ctx.is_main and not ctx.is_distributed and ctx.device == torch.device("cpu")
    assert is_main_process()
    model = nn.Linear(2, 2)
    assert wrap_model(model, ctx) is model and unwrap(model) is model
    value = all_reduce_mean(torch.tensor([1.0, 3.0]), ctx)
    assert torch.equal(value, torch.tensor([1.0, 3.0]))
    assert all_reduce_mean(2.5, ctx).item() == 2.5


def test_is_main_process_reads_torchrun_env(monkeypatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert is_main_process()


def test_loader_order_depends_on_seed_and_epoch_only() -> None:
    ctx = DistributedContext()
    loader = make_loader(_dataset(), batch_size=4, shuffle=True, seed=1, ctx=ctx)
    set_epoch(loader, 0)
    epoch0 = _order(loader)
    assert sorted(epoch0) == list(range(20)) and epoch0 != list(range(20))
    set_epoch(loader, 1)
    epoch1 = _order(loader)
    assert epoch1 != epoch0
    other = make_loader(_dataset(), batch_size=4, shuffle=True, seed=1, ctx=ctx)
    set_epoch(other, 1)
    assert _order(other) == epoch1


def test_skip_batches_resumes_mid_epoch() -> None:
    ctx = DistributedContext()
    loader = make_loader(_dataset(), batch_size=4, shuffle=True, seed=1, ctx=ctx)
    set_epoch(loader, 3)
    full = [batch[0].tolist() for batch in loader]
    set_epoch(loader, 3, skip_batches=2)
    assert len(loader) == 3
    assert [batch[0].tolist() for batch in loader] == full[2:]
    set_epoch(loader, 3)  # skipping applies to one epoch only
    assert len(loader) == 5


def test_iterating_a_loader_leaves_the_global_rng_alone() -> None:
    loader = make_loader(_dataset(), batch_size=4, shuffle=True, seed=1, ctx=DistributedContext())
    before = torch.get_rng_state()
    for epoch in range(3):
        set_epoch(loader, epoch)
        _order(loader)
    assert torch.equal(before, torch.get_rng_state())


def test_shards_are_disjoint_and_cover_the_data() -> None:
    shards = []
    for rank in (0, 1):
        ctx = DistributedContext(rank=rank, local_rank=rank, world_size=2, backend="gloo")
        loader = make_loader(_dataset(21), batch_size=2, shuffle=True, seed=5, ctx=ctx)
        set_epoch(loader, 0)
        shards.append(_order(loader))
    assert len(shards[0]) == len(shards[1]) == 11  # 21 padded to 22: equal batch counts
    assert set(shards[0]) | set(shards[1]) == set(range(21))
    assert len(set(shards[0]) & set(shards[1])) == 1  # only the padding sample repeats


class RandomItems(Dataset):
    """Each item draws from the worker's torch RNG, like a random augmentation."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.rand(1) + i


def test_worker_randomness_is_reproducible_per_epoch() -> None:
    loader = make_loader(
        RandomItems(), batch_size=2, shuffle=False, seed=0, ctx=DistributedContext(), num_workers=2
    )

    def run(epoch: int) -> torch.Tensor:
        set_epoch(loader, epoch)
        return torch.cat(list(loader))

    first = run(0)
    assert torch.equal(first, run(0))
    assert not torch.equal(first, run(1))


@pytest.mark.slow
def test_torchrun_two_process_ddp_with_vq(tmp_path) -> None:
    """2 CPU processes (gloo): DDP keeps weights equal, the VQ keeps its codebook equal."""
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # picks a free port on localhost
        "--nproc_per_node=2",
        str(worker),
        "--out",
        str(tmp_path),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"torchrun timed out:\n{exc.stdout}\n{exc.stderr}")
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout}\n{proc.stderr[-6000:]}"

    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["world_size"] == r1["world_size"] == 2 and r0["is_main"] and not r1["is_main"]
    assert len(r0["seen"]) == 2  # 8 steps of 6 batches per epoch: two epochs
    for seen0, seen1 in zip(r0["seen"], r1["seen"], strict=True):
        assert seen0 and set(seen0).isdisjoint(seen1)  # different data on each rank
    assert r0["losses"] == r1["losses"]  # all_reduce_mean gives every rank the same metric
    assert r0["state"].keys() == r1["state"].keys()
    for key in r0["state"]:
        assert torch.equal(r0["state"][key], r1["state"][key]), f"{key} differs between ranks"
    # The codebook was trained (k-means + EMA), not left at its (rank-dependent) random init.
    assert bool(r0["state"]["vq.initted"])
    assert {"vq.embed", "vq.embed_sum", "vq.cluster_size"} <= set(r0["state"])
    # Only rank 0 wrote files: one checkpoint, one event file.
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "latest",
        "step_00000008.pt",
    ]
    assert len(list((tmp_path / "tb").iterdir())) == 1


def test_require_single_process_refuses_torchrun(monkeypatch) -> None:
    from seqae.training import require_single_process

    monkeypatch.setenv("WORLD_SIZE", "1")
    require_single_process("r")  # one process: fine
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="r runs in a single process.*WORLD_SIZE=2"):
        require_single_process("r")


@pytest.mark.parametrize("recipe", ["ae_vs_pca", "pretrain", "onehot_classify", "binary_tree"])
def test_single_process_recipes_refuse_torchrun(recipe: str, monkeypatch, tmp_path) -> None:
    from seqae.cli import run_recipe

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match=f"{recipe} runs in a single process"):
        run_recipe(recipe, config=f"{recipe}_tiny", overrides=[f"output_dir={tmp_path}"])
    assert not (tmp_path / "metrics.json").exists()


def test_run_recipe_destroys_the_process_group(tmp_path: Path) -> None:
    """A rank that exits with its gloo group alive can abort in C++ teardown, failing the job."""
    import torch.distributed as dist

    from seqae.cli import run_recipe

    script = tmp_path / "grouped.py"
    script.write_text(
        "import torch.distributed as dist\n"
        "def main(cfg):\n"
        "    store = dist.FileStore(cfg['store'], 1)\n"
        "    dist.init_process_group('gloo', store=store, rank=0, world_size=1)\n"
        "    return dist.is_initialized()\n"
    )
    config = tmp_path / "grouped.yaml"
    config.write_text(f"store: {tmp_path / 'store'}\n")
    assert not dist.is_initialized()
    try:
        assert run_recipe(str(script), config=str(config)) is True
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
