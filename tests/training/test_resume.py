"""A run interrupted and resumed from its checkpoint ends bitwise equal to an uninterrupted run."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from seqae.training import (
    CheckpointManager,
    DistributedContext,
    EarlyStopping,
    make_loader,
    seed_everything,
    set_epoch,
)

TOTAL_STEPS = 30
SAVE_EVERY = 4
BATCH = 8  # 64 samples -> 8 batches per epoch, so the run spans several epochs


class Crash(Exception):
    """Stands in for a kill -9 / pre-emption."""


def _dataset() -> TensorDataset:
    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(64, 8, generator=gen)
    y = x[:, :1] * 2.0 - x[:, 1:2] + 0.1 * torch.randn(64, 1, generator=gen)
    return TensorDataset(x, y)


def train(run_dir, *, crash_at: int | None = None) -> nn.Module:
    """A recipe-style loop: setup, resume if a checkpoint exists, train, checkpoint."""
    seed_everything(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.7)
    stopper = EarlyStopping(patience=100)
    loader = make_loader(
        _dataset(), batch_size=BATCH, shuffle=True, seed=7, ctx=DistributedContext()
    )
    ckpt = CheckpointManager(run_dir / "checkpoints", keep_last=2)

    step, epoch, batch_in_epoch = 0, 0, 0
    resumed = ckpt.load_latest(model=model, optimizer=opt, scheduler=sched)
    if resumed is not None:
        step = resumed.step
        epoch = resumed.extra["epoch"]
        batch_in_epoch = resumed.extra["batch_in_epoch"]
        stopper.load_state_dict(resumed.extra["early_stopping"])

    model.train()
    while step < TOTAL_STEPS:
        set_epoch(loader, epoch, skip_batches=batch_in_epoch)
        for x, y in loader:
            # Every RNG stream is used: torch (dropout, noise), NumPy and Python's random.
            noise = torch.from_numpy(np.random.randn(*x.shape).astype(np.float32))
            x = x + 0.01 * noise * random.random() + 0.01 * torch.randn_like(x)
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            batch_in_epoch += 1
            stopper.step(loss.item())
            if step % SAVE_EVERY == 0:
                ckpt.save(
                    step,
                    model=model,
                    optimizer=opt,
                    scheduler=sched,
                    extra={
                        "epoch": epoch,
                        "batch_in_epoch": batch_in_epoch,
                        "early_stopping": stopper.state_dict(),
                    },
                )
            if step == crash_at:
                raise Crash
            if step >= TOTAL_STEPS:
                break
        else:
            epoch += 1
            batch_in_epoch = 0
    return model


@pytest.mark.parametrize(
    "crash_at",
    [
        14,  # mid-epoch, two steps after the last checkpoint (those steps are redone)
        16,  # right after a checkpoint that ends an epoch (8 batches per epoch)
    ],
)
def test_resume_is_bitwise_identical(tmp_path, crash_at: int) -> None:
    reference = train(tmp_path / "straight")

    with pytest.raises(Crash):
        train(tmp_path / "interrupted", crash_at=crash_at)
    seed_everything(12345)  # a new process would start from unrelated RNG state
    resumed = train(tmp_path / "interrupted")

    for (name, a), (_, b) in zip(
        reference.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), f"{name} differs after resume"
    assert [
        p.name for p in CheckpointManager(tmp_path / "interrupted/checkpoints").checkpoints()
    ] == [
        "step_00000024.pt",
        "step_00000028.pt",
    ]


def test_resume_without_restoring_rng_diverges(tmp_path) -> None:
    """The check above is sensitive: the same resume without the RNG state does not match."""
    reference = train(tmp_path / "straight")
    with pytest.raises(Crash):
        train(tmp_path / "interrupted", crash_at=14)
    original = CheckpointManager.load_latest

    def no_rng(self, **kwargs):
        return original(self, **kwargs, restore_rng=False)

    try:
        CheckpointManager.load_latest = no_rng  # type: ignore[method-assign]
        resumed = train(tmp_path / "interrupted")
    finally:
        CheckpointManager.load_latest = original  # type: ignore[method-assign]
    assert not all(
        torch.equal(a, b) for a, b in zip(reference.parameters(), resumed.parameters(), strict=True)
    )
