"""Speed of seqae's tree CRF against torch-struct's ``TreeCRF`` on the same span scores.

Run by hand (never by the tests):

    python benchmarks/tree_crf.py                  # CPU, torch's default thread count
    python benchmarks/tree_crf.py --threads 1      # steadier on a busy machine
    python benchmarks/tree_crf.py --device cuda    # when a GPU is present

Needs the peer for the comparison: ``pip install --no-deps torch-struct`` (or
``pip install -e .[bench]``); without it only seqae is timed.

For each sentence length (all ``--batch`` sentences of that length, float32 scores drawn from
a standard normal) it times, as the median over ``--repeats`` runs after one warm-up run, the
two libraries alternately so that machine load affects both alike:

* ``log Z + backward``: the partition function and its gradient (the span marginals);
* ``sample K``: ``--samples`` exact tree samples per sentence
  (torch-struct: ``TreeCRF.sample((K,))``, seqae: ``TreeCRF.sample(K)``);
* ``entropy + backward``: the exact entropy and its gradient.

It prints times, ``RATIO seqae/torch-struct speed`` per row (peer time / seqae time; target
>= 1.0) and checks that the two ``log Z`` and entropies agree (``allclose``).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

import torch
from torch import Tensor

from seqae.tree.crf import TreeCRF


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of ``fn`` takes (synchronising CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def seqae_cases(scores: Tensor, lengths: Tensor, samples: int) -> dict[str, Callable[[], object]]:
    def log_z() -> None:
        leaf = scores.detach().requires_grad_()
        TreeCRF(leaf, lengths).log_partition().sum().backward()

    def sample() -> None:
        TreeCRF(scores, lengths).sample(samples)

    def entropy() -> None:
        leaf = scores.detach().requires_grad_()
        TreeCRF(leaf, lengths).entropy().sum().backward()

    return {"log Z + backward": log_z, f"sample {samples}": sample, "entropy + backward": entropy}


def peer_cases(scores: Tensor, lengths: Tensor, samples: int) -> dict[str, Callable[[], object]]:
    from torch_struct import TreeCRF as PeerTreeCRF

    def log_z() -> None:
        leaf = scores.detach().unsqueeze(-1).requires_grad_()  # (B, N, N, 1): one label
        PeerTreeCRF(leaf, lengths=lengths).partition.sum().backward()

    def sample() -> None:
        PeerTreeCRF(scores.unsqueeze(-1), lengths=lengths).sample((samples,))

    def entropy() -> None:
        leaf = scores.detach().unsqueeze(-1).requires_grad_()
        PeerTreeCRF(leaf, lengths=lengths).entropy.sum().backward()

    return {"log Z + backward": log_z, f"sample {samples}": sample, "entropy + backward": entropy}


def check_agreement(scores: Tensor, lengths: Tensor) -> str:
    """``log Z`` and entropy of both libraries, compared with ``allclose``."""
    from torch_struct import TreeCRF as PeerTreeCRF

    ours = TreeCRF(scores, lengths)
    peer = PeerTreeCRF(scores.unsqueeze(-1), lengths=lengths)
    pairs = {
        "log Z": (ours.log_partition(), peer.partition),
        "entropy": (ours.entropy(), peer.entropy),
    }
    lines = []
    for name, (a, b) in pairs.items():
        a, b = a.detach(), b.detach()
        ok = torch.allclose(a, b, rtol=1e-4, atol=1e-3)
        lines.append(f"{name} allclose={ok} (max |diff| {float((a - b).abs().max()):.2e})")
        if not ok:
            raise SystemExit(f"tree_crf: error: {name} differs from torch-struct's")
    return "; ".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lengths", type=int, nargs="+", default=[30, 60])
    parser.add_argument("--samples", type=int, default=8, help="trees per sentence")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    try:
        peer_version = version("torch-struct")
    except PackageNotFoundError:
        peer_version = None
    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
        f"torch-struct {peer_version or 'not installed (pip install --no-deps torch-struct): seqae only'}"
    )
    # torch-struct's distributions warn about arg_constraints on every construction
    warnings.filterwarnings("ignore", message=".*arg_constraints")
    gen = torch.Generator().manual_seed(args.seed)
    for n in args.lengths:
        scores = torch.randn(args.batch, n, n, generator=gen).to(device)
        lengths = torch.full((args.batch,), n, dtype=torch.long, device=device)
        libraries = {"seqae": seqae_cases(scores, lengths, args.samples)}
        if peer_version is not None:
            libraries["torch-struct"] = peer_cases(scores, lengths, args.samples)
            print(f"length {n}: {check_agreement(scores, lengths)}")
        for case in libraries["seqae"]:
            times: dict[str, list[float]] = {name: [] for name in libraries}
            for cases in libraries.values():  # warm-up
                timed(cases[case], device)
            for _ in range(args.repeats):
                for name, cases in libraries.items():
                    times[name].append(timed(cases[case], device))
            median = {name: statistics.median(t) for name, t in times.items()}
            row = (
                f"batch {args.batch} length {n:3d} {case:20s} seqae {median['seqae'] * 1e3:8.2f} ms"
            )
            if "torch-struct" in median:
                ratio = median["torch-struct"] / median["seqae"]
                row += (
                    f"  torch-struct {median['torch-struct'] * 1e3:8.2f} ms"
                    f"  RATIO seqae/torch-struct speed {ratio:.2f}x"
                )
            print(row, flush=True)


if __name__ == "__main__":
    main()
