"""Helper launched by test_distributed.py: ``torchrun --nproc_per_node=2 --standalone``.

Trains a tiny VQ autoencoder with DDP on CPU (gloo), each rank on its own shard, checkpoints it
(a collective save), reloads the checkpoint, and writes each rank's final state to
``<out>/rank{R}.pt`` for the test to compare. (Writing per-rank result files is what a test
needs; a recipe writes only on rank 0.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from seqae.core.vq import VectorQuantizer
from seqae.training import (
    CheckpointManager,
    MetricLogger,
    all_reduce_mean,
    barrier,
    check_finite,
    cleanup,
    init_distributed,
    make_loader,
    seed_everything,
    set_epoch,
    unwrap,
    wrap_model,
)


class Indexed(Dataset):
    """Fixed random vectors; returns the index too, so the test can check the shards."""

    def __init__(self, n: int = 96, dim: int = 6) -> None:
        self.x = torch.randn(n, dim, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], i


class TinyVQAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4))
        self.vq = VectorQuantizer(
            dim=4, codebook_size=8, ema=True, kmeans_init=True, dead_code_threshold=0.5
        )
        self.decoder = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 6))

    def forward(self, x: torch.Tensor):
        z, vq_loss, info = self.vq(self.encoder(x))
        return self.decoder(z), vq_loss, info


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()

    ctx = init_distributed(device_preference="cpu")
    assert ctx.world_size == 2 and ctx.backend == "gloo", ctx
    # Different seeds per rank on purpose: DDP must broadcast rank 0's weights, and the VQ
    # must broadcast its codebook and all-reduce its EMA statistics to stay in sync.
    seed_everything(100 + ctx.rank)
    # broadcast_buffers=False: the codebook buffers must stay identical through the VQ's own
    # all-reduce, not because DDP copies rank 0's buffers at every forward.
    model = wrap_model(TinyVQAE(), ctx, broadcast_buffers=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loader = make_loader(Indexed(), batch_size=8, shuffle=True, seed=3, ctx=ctx, drop_last=True)
    ckpt = CheckpointManager(args.out / "checkpoints", keep_last=1)
    logger = MetricLogger(args.out)

    seen: list[list[int]] = []  # sample indices, per epoch
    losses: list[float] = []
    step, epoch = 0, 0
    model.train()
    while step < args.steps:
        set_epoch(loader, epoch)
        seen.append([])
        for x, index in loader:
            seen[-1].extend(index.tolist())
            x_hat, vq_loss, info = model(x)
            rec = nn.functional.mse_loss(x_hat, x)
            loss = rec + vq_loss
            check_finite({"rec": rec, "vq": vq_loss}, step=step)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            mean_loss = all_reduce_mean(loss.detach(), ctx)
            losses.append(float(mean_loss))
            logger.scalar("loss", mean_loss, step=step)
            if step >= args.steps:
                break
        epoch += 1
    logger.close()

    ckpt.save(step, model=model, optimizer=opt, extra={"epoch": epoch})  # every rank calls it
    reloaded = TinyVQAE()
    loaded = ckpt.load_latest(model=reloaded)
    assert loaded is not None and loaded.step == step
    for key, value in unwrap(model).state_dict().items():
        assert torch.equal(value, reloaded.state_dict()[key]), key

    torch.save(
        {
            "state": unwrap(model).state_dict(),
            "seen": seen,
            "losses": losses,
            "world_size": ctx.world_size,
            "is_main": ctx.is_main,
        },
        args.out / f"rank{ctx.rank}.pt",
    )
    barrier()
    cleanup()


if __name__ == "__main__":
    main()
