"""Speed and codebook quality of seqae's VectorQuantizer against vector-quantize-pytorch.

Run by hand (never by the tests):

    python benchmarks/bench_vq.py                 # CPU
    python benchmarks/bench_vq.py --device cuda   # GPU, when there is one

Needs the peer: ``pip install vector-quantize-pytorch`` (or ``pip install -e .[bench]``).

Both quantizers get the same settings: EMA codebook (decay 0.99), commitment weight 0.25,
k-means initialisation (10 iterations) on the first batch, dead-code restart below an EMA
cluster size of 2, plain straight-through gradient (the peer's rotation trick is off unless
``--peer-rotation-trick``).

* speed: forward + backward on ``h`` of shape (batch, seq, dim) = (32, 256, 64) with a codebook
  of 512; steps/s, the median over ``--repeats`` timed runs of ``--steps`` steps each, after
  ``--warmup`` untimed steps (which include the k-means initialisation); the two libraries are
  timed alternately so that machine load affects both alike.
* quality: both are trained for ``--quality-steps`` steps on the same batches from a fixed
  mixture of ``--clusters`` Gaussian clusters in ``dim`` dimensions, then evaluated (eval mode)
  on held-out vectors of the same mixture: codebook perplexity (higher is better, at most
  min(clusters, codebook size)), fraction of codes used, and quantisation MSE (lower is better).
  A third row, ``defaults``, is seqae's ``VectorQuantizer(dim=..., codebook_size=...)`` with
  every other argument at its default (k-means init, dead-code threshold 0.1).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version

import torch
from torch import Tensor, nn

from seqae.core.vq import VectorQuantizer


def build_seqae(args: argparse.Namespace) -> nn.Module:
    return VectorQuantizer(
        dim=args.dim,
        codebook_size=args.codebook_size,
        commitment_weight=0.25,
        ema=True,
        decay=args.decay,
        kmeans_init=True,
        kmeans_iters=10,
        dead_code_threshold=args.dead_code_threshold,
    )


def build_seqae_defaults(args: argparse.Namespace) -> nn.Module:
    """seqae's quantiser as a user gets it without tuning: every optional argument left out."""
    return VectorQuantizer(dim=args.dim, codebook_size=args.codebook_size)


def build_peer(args: argparse.Namespace) -> nn.Module:
    from vector_quantize_pytorch import VectorQuantize

    return VectorQuantize(
        dim=args.dim,
        codebook_size=args.codebook_size,
        commitment_weight=0.25,
        decay=args.decay,
        kmeans_init=True,
        kmeans_iters=10,
        threshold_ema_dead_code=args.dead_code_threshold,
        rotation_trick=args.peer_rotation_trick,
    )


def seqae_step(vq: nn.Module, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    out = vq(h)
    return out.z, out.loss, out.info["indices"]


def peer_step(vq: nn.Module, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    z, indices, loss = vq(h)
    return z, loss, indices


class Mixture:
    """A fixed mixture of Gaussian clusters; ``sample(n)`` draws ``(n, dim)`` vectors."""

    def __init__(self, clusters: int, dim: int, *, noise: float, seed: int, device: str) -> None:
        self.g = torch.Generator(device=device).manual_seed(seed)
        self.device = device
        self.centres = torch.randn(clusters, dim, generator=self.g, device=device)
        self.noise = noise

    def sample(self, n: int) -> Tensor:
        k = torch.randint(len(self.centres), (n,), generator=self.g, device=self.device)
        noise = torch.randn(n, self.centres.shape[1], generator=self.g, device=self.device)
        return self.centres[k] + self.noise * noise


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def train_step(step: Callable, vq: nn.Module, h: Tensor) -> None:
    h = h.detach().requires_grad_(True)  # stands in for an encoder output
    z, loss, _ = step(vq, h)
    (z.square().mean() + loss).backward()  # a stand-in reconstruction term + the VQ loss


def time_steps(
    step: Callable, vq: nn.Module, batches: list[Tensor], steps: int, device: str
) -> float:
    sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        train_step(step, vq, batches[i % len(batches)])
    sync(device)
    return steps / (time.perf_counter() - t0)


def perplexity(indices: Tensor, k: int) -> float:
    counts = torch.bincount(indices.reshape(-1), minlength=k).double()
    p = counts / counts.sum()
    return torch.special.entr(p).sum().exp().item()


@torch.no_grad()
def evaluate(step: Callable, vq: nn.Module, x: Tensor, k: int) -> tuple[float, float, float]:
    vq.eval()
    z, _, indices = step(vq, x)
    vq.train()
    usage = torch.bincount(indices.reshape(-1), minlength=k).gt(0).float().mean().item()
    return perplexity(indices, k), usage, (z - x).square().mean().item()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--codebook-size", type=int, default=512)
    p.add_argument("--decay", type=float, default=0.99)
    p.add_argument("--dead-code-threshold", type=float, default=2.0)
    p.add_argument("--warmup", type=int, default=5, help="untimed steps (incl. k-means init)")
    p.add_argument("--steps", type=int, default=20, help="steps per timed repeat")
    p.add_argument("--repeats", type=int, default=7, help="timed repeats; the median is printed")
    p.add_argument("--quality-steps", type=int, default=300)
    p.add_argument("--clusters", type=int, default=500, help="Gaussian clusters in the data")
    p.add_argument("--noise", type=float, default=0.1, help="std of each cluster")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--peer-rotation-trick", action="store_true", help="peer's default for dim>1")
    p.add_argument("--skip-quality", action="store_true")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)

    dev = args.device
    shape = (args.batch, args.seq, args.dim)
    print(
        f"torch {torch.__version__}, vector-quantize-pytorch {version('vector-quantize-pytorch')}",
        f"| device {dev}, {torch.get_num_threads()} threads | h {shape}, codebook "
        f"{args.codebook_size}, decay {args.decay}, dead-code threshold "
        f"{args.dead_code_threshold}, k-means init",
    )

    # ---- speed -------------------------------------------------------------------------------
    mix = Mixture(args.clusters, args.dim, noise=args.noise, seed=args.seed, device=dev)
    batches = [mix.sample(args.batch * args.seq).view(shape) for _ in range(8)]
    torch.manual_seed(args.seed)
    runs = {
        "seqae": (seqae_step, build_seqae(args).to(dev)),
        "peer": (peer_step, build_peer(args).to(dev)),
    }
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for step, vq in runs.values():
        time_steps(step, vq, batches, args.warmup, dev)
    for _ in range(args.repeats):
        for name, (step, vq) in runs.items():
            rates[name].append(time_steps(step, vq, batches, args.steps, dev))
    med = {name: statistics.median(r) for name, r in rates.items()}
    print(f"\nspeed: forward+backward, median of {args.repeats} x {args.steps} steps")
    for name in runs:
        spread = f"[{min(rates[name]):.1f}..{max(rates[name]):.1f}]"
        print(
            f"  {name:6s} {med[name]:8.2f} steps/s {spread:>16s}  "
            f"{med[name] * args.batch:9.1f} samples/s  {med[name] * args.batch * args.seq:11.0f} vectors/s"
        )
    print(f"  RATIO seqae/peer speed: {med['seqae'] / med['peer']:.2f}  (target >= 1.0)")

    if args.skip_quality:
        return
    # ---- quality -----------------------------------------------------------------------------
    mix = Mixture(args.clusters, args.dim, noise=args.noise, seed=args.seed + 1, device=dev)
    train = [mix.sample(args.batch * args.seq).view(shape) for _ in range(16)]
    held_out = mix.sample(32768).view(-1, args.seq, args.dim)
    torch.manual_seed(args.seed)
    runs = {
        "seqae": (seqae_step, build_seqae(args).to(dev)),
        "peer": (peer_step, build_peer(args).to(dev)),
        "defaults": (seqae_step, build_seqae_defaults(args).to(dev)),
    }
    print(
        f"\nquality: {args.quality_steps} training steps on a mixture of {args.clusters} "
        f"Gaussians in {args.dim}-d (noise {args.noise}), eval on {held_out.shape[0] * args.seq} "
        "held-out vectors"
    )
    result = {}
    for name, (step, vq) in runs.items():
        torch.manual_seed(args.seed)
        for i in range(args.quality_steps):
            train_step(step, vq, train[i % len(train)])
        result[name] = evaluate(step, vq, held_out, args.codebook_size)
        ppl, usage, mse = result[name]
        print(
            f"  {name:8s} perplexity {ppl:7.1f}   codes used {usage:6.1%}   quantisation MSE {mse:.4f}"
        )
    print(
        f"  RATIO seqae/peer perplexity: {result['seqae'][0] / result['peer'][0]:.3f}  "
        "(target >= 1.0)"
    )


if __name__ == "__main__":
    main()
