"""Stress test: many two-process torchrun runs of a tiny recipe, under load and from cold starts.

A distributed run must end with exit 0 on every rank, every time: no rank may abort in the C++
runtime at exit ("terminate called without an active exception"). This script runs the same
tiny job many times and counts the runs that did not end cleanly; it keeps the log of each
failure.

    .venv/bin/python scripts/stress_torchrun.py --runs 40 --load 2 --cold-every 5

Options: ``--load N`` keeps N busy-looping processes running beside the job (a loaded
machine), ``--cold-every K`` clears Python's and matplotlib's caches before every K-th run (the
first run on a freshly set-up machine), ``--recipe``/``--config`` choose the job.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _burn(stop: mp.Event) -> None:  # type: ignore[valid-type]
    x = 0
    while not stop.is_set():
        x = (x * 31 + 7) % 1_000_003


def _clear_caches() -> None:
    """What a first run on a fresh machine lacks: bytecode and matplotlib's font cache."""
    for cache in REPO.glob("seqae/**/__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    for cache in REPO.glob("recipes/**/__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(Path.home() / ".cache" / "matplotlib", ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--load", type=int, default=0, help="busy processes beside the job")
    parser.add_argument("--cold-every", type=int, default=0, help="clear caches every K runs")
    parser.add_argument("--recipe", default="vae_digits")
    parser.add_argument("--config", default="vae_digits_tiny")
    parser.add_argument("--logs", type=Path, default=Path("runs/stress_torchrun"))
    args = parser.parse_args()
    if args.runs < 1 or args.load < 0 or args.cold_every < 0:
        parser.error("--runs must be at least 1, --load and --cold-every at least 0")

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    stop = mp.Event()
    burners = [mp.Process(target=_burn, args=(stop,), daemon=True) for _ in range(args.load)]
    for proc in burners:
        proc.start()
    args.logs.mkdir(parents=True, exist_ok=True)
    failures, aborts, seconds = 0, 0, []
    try:
        for i in range(args.runs):
            if args.cold_every and i % args.cold_every == 0:
                _clear_caches()
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [
                    torchrun,
                    "--standalone",
                    "--nproc_per_node=2",
                    "-m",
                    "seqae.cli",
                    "run",
                    args.recipe,
                    "--config",
                    args.config,
                    f"output_dir={tmp}/run",
                ]
                started = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
                seconds.append(time.perf_counter() - started)
            log = proc.stdout + proc.stderr
            aborted = "terminate called" in log or "SIGABRT" in log
            ok = proc.returncode == 0 and not aborted
            failures += not ok
            aborts += aborted
            if not ok:
                (args.logs / f"failure_{i:03d}.log").write_text(log)
            print(
                f"run {i + 1:3d}/{args.runs}: exit {proc.returncode}"
                f"{' (rank abort)' if aborted else ''}  {seconds[-1]:.1f} s",
                flush=True,
            )
    finally:
        stop.set()
        for proc in burners:
            proc.join(timeout=5)
    print(
        f"stress_torchrun: {args.runs} runs, {failures} failed ({aborts} with a rank abort), "
        f"load {args.load}, cold start every {args.cold_every or 'never'}; "
        f"median {sorted(seconds)[len(seconds) // 2]:.1f} s per run"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
