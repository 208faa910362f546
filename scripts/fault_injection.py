"""Fault injection: kill runs at random moments and damage the files they wrote, then check that
nothing already written is lost and nothing damaged is used.

Two kinds of fault:

- **kill**: a small training run (a :class:`~seqae.training.RunSession` loop, checkpointing every
  few steps) is killed with SIGKILL at a random moment, again and again, and resumed each time
  with ``resume=true`` until it finishes. It must finish with exactly the weights of an
  uninterrupted run.
- **damage**: a finished run's files (a checkpoint, ``checkpoints/latest``, the saved model's
  ``model.safetensors`` and ``config.json``, ``run.json``) get a random bit flipped or are
  truncated. Resuming must either use intact state (falling back to an older checkpoint) or be
  refused with one line; loading the model must give the saved weights or be refused. Using
  damaged data without a word counts as data lost.

    .venv/bin/python scripts/fault_injection.py --kills 30 --damages 200

The test suite runs a small version of both (tests/training/test_fault_injection.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


class Crash(Exception):
    """An in-process stand-in for a kill (the quick version of a kill trial)."""


def toy_run(
    out: Path,
    *,
    steps: int,
    every: int,
    resume: bool,
    crash_at: int | None = None,
    step_delay: float = 0.0,
) -> None:
    """The training program each kill trial runs (and kills): deterministic, checkpointing
    every ``every`` steps, a little slow per step so that kills land at every phase of the loop.
    ``crash_at`` raises :class:`Crash` after that many steps of this session."""
    import torch

    from seqae.training import RunSession, seed_everything

    cfg = {
        "seed": 0,
        "output_dir": str(out),
        "resume": resume,
        "train": {"steps": steps, "checkpoint_every": every, "lr": 0.05},
    }
    seed_everything(0)
    with RunSession(cfg, recipe="toy", verbose=False) as run:
        model = _toy_model()
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        resumed = run.resume(model=model, optimizer=opt)
        step = start = resumed.step if resumed else 0
        data = torch.randn(64, 6, generator=torch.Generator().manual_seed(1))
        while step < steps:
            x = data[torch.randint(0, 64, (16,))]
            loss = model.reconstruction_loss(model(x).x_hat, x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            time.sleep(step_delay)
            if crash_at is not None and step - start >= crash_at:
                raise Crash(f"crashed at step {step}")
            if run.checkpoint_due(step) or step == steps:
                run.save(step, model=model, optimizer=opt)
        model.save_pretrained(run.dir / "model")
        run.finish({"steps": step})  # (a run killed after its last checkpoint has no loss)


@dataclass
class Tally:
    """Faults tried, survived, and the cases where data were lost or damage went unnoticed."""

    tried: int = 0
    survived: int = 0
    refused: int = 0  # of the survived: damage noticed and refused in one line
    lost: list[str] = field(default_factory=list)

    def add(self, ok: bool, what: str, *, refused: bool = False) -> None:
        self.tried += 1
        if ok:
            self.survived += 1
            self.refused += refused
        else:
            self.lost.append(what)


def _toy_model():  # noqa: ANN202 - an Autoencoder; imported late, like torch
    from seqae.core import Autoencoder

    return Autoencoder.from_config(
        {
            "encoder": {"name": "mlp", "in_dim": 6, "hidden": [8], "out_dim": 4},
            "bottleneck": {"name": "identity"},
            "decoder": {"name": "mlp", "in_dim": 4, "hidden": [8], "out_dim": 6},
        }
    )


def _toy(out: Path, *, steps: int, every: int, resume: bool) -> list[str]:
    args = [str(out), str(steps), str(every), "1" if resume else "0"]
    return [sys.executable, str(Path(__file__).resolve()), "--child", *args]


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model" / "model.safetensors"))


def _same(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def reference_run(root: Path, *, steps: int, every: int) -> Path:
    """An uninterrupted run: what every killed-and-resumed run must end with."""
    out = root / "reference"
    toy_run(out, steps=steps, every=every, resume=False)
    return out


def crash_trials(
    root: Path, reference: Path, *, trials: int, steps: int, every: int, rng: random.Random
) -> Tally:
    """In-process crashes at random steps, resumed until finished (quick; no SIGKILL)."""
    tally = Tally()
    expected = _weights(reference)
    for trial in range(trials):
        out = root / f"crash{trial}"
        resume = False
        for _attempt in range(4):
            try:
                toy_run(
                    out, steps=steps, every=every, resume=resume, crash_at=rng.randrange(1, steps)
                )
            except Crash:
                resume = True
                continue
            break
        else:
            toy_run(out, steps=steps, every=every, resume=True)
        tally.add(_same(_weights(out), expected), f"crash trial {trial}: weights differ")
    return tally


def kill_trials(
    root: Path, reference: Path, *, trials: int, steps: int, every: int, rng: random.Random
) -> Tally:
    """Kill runs at random moments, resume each until it finishes, compare with the reference."""
    tally = Tally()
    expected = _weights(reference)
    for trial in range(trials):
        out = root / f"kill{trial}"
        resume, kills = False, 0
        for _attempt in range(20):
            proc = subprocess.Popen(
                _toy(out, steps=steps, every=every, resume=resume),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            if kills < 3:  # kill up to three times, at random moments
                time.sleep(rng.uniform(0.3, 2.5))
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
            _, err = proc.communicate()
            resume = True
            if proc.returncode == 0:
                break
            if proc.returncode != -signal.SIGKILL:
                tally.add(False, f"kill trial {trial}: resume failed: {err.strip()[-300:]}")
                break
        else:
            tally.add(False, f"kill trial {trial}: never finished")
            continue
        if proc.returncode == 0:
            same = _same(_weights(out), expected)
            tally.add(same, f"kill trial {trial} ({kills} kills): weights differ from reference")
    return tally


def _damage(path: Path, rng: random.Random) -> str:
    data = bytearray(path.read_bytes())
    if not data or rng.random() < 0.3:
        cut = rng.randrange(len(data) + 1) if data else 0
        path.write_bytes(bytes(data[:cut]))
        return f"truncated {path.name} to {cut} of {len(data)} bytes"
    i = rng.randrange(len(data))
    data[i] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))
    return f"flipped a bit at byte {i} of {path.name}"


def damage_trials(
    root: Path, reference: Path, *, trials: int, steps: int, every: int, rng: random.Random
) -> Tally:
    """Damage one file of a finished run; loading and resuming must notice or be unaffected."""
    import torch

    from seqae.core.saving import SavedModelError, load_pretrained
    from seqae.training import CheckpointManager, RunFolderError, RunSession
    from seqae.training.checkpoint import CheckpointCorruptError

    tally = Tally()
    expected = _weights(reference)
    cfg = {
        "seed": 0,
        "resume": True,
        "train": {"steps": steps, "checkpoint_every": every, "lr": 0.05},
    }
    for trial in range(trials):
        out = root / f"damage{trial}"
        shutil.copytree(reference, out)
        (out / ".lock").unlink(missing_ok=True)
        targets = [
            *sorted((out / "checkpoints").glob("step_*.pt")),
            out / "checkpoints" / "latest",
            out / "model" / "model.safetensors",
            out / "model" / "config.json",
            out / "run.json",
        ]
        target = rng.choice(targets)
        what = _damage(target, rng)
        # 1. the saved model: the exact weights, or a clear refusal
        try:
            model = load_pretrained(out / "model")
            tally.add(
                _same(dict(model.state_dict()), expected),
                f"{what}: the model loaded with other weights",
            )
        except (SavedModelError, ValueError) as exc:
            tally.add("\n" not in str(exc), f"{what}: a multi-line refusal: {exc}", refused=True)
        # 2. resuming: intact state (the newest or an older checkpoint), or a clear refusal
        try:
            with RunSession({**cfg, "output_dir": str(out)}, recipe="toy", verbose=False) as run:
                probe = _toy_model()
                loaded = run.resume(model=probe, optimizer=torch.optim.Adam(probe.parameters()))
            if loaded is None:
                tally.add(False, f"{what}: resume silently started afresh")
                continue
            intact = CheckpointManager.read(loaded.path)
            # the checkpoint it resumed from must be an intact one: same as before the damage
            original = CheckpointManager.read(reference / "checkpoints" / loaded.path.name)
            tally.add(
                _same(intact["model"], original["model"]) and loaded.step == original["step"],
                f"{what}: resumed from damaged state",
            )
        except (RunFolderError, CheckpointCorruptError) as exc:
            tally.add("\n" not in str(exc), f"{what}: a multi-line refusal: {exc}", refused=True)
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILL-and-resume trials")
    parser.add_argument("--crashes", type=int, default=50, help="in-process crash trials")
    parser.add_argument("--damages", type=int, default=200, help="file-damage trials")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--every", type=int, default=25, help="checkpoint every N steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=4, metavar=("OUT", "STEPS", "EVERY", "RESUME"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args(argv)
    if args.child:
        out, steps, every, resume = args.child
        toy_run(
            Path(out), steps=int(steps), every=int(every), resume=resume == "1", step_delay=0.004
        )
        return 0
    if min(args.kills, args.crashes, args.damages) < 0 or args.steps < 1 or args.every < 1:
        parser.error("--kills and --damages must be >= 0, --steps and --every >= 1")
    rng = random.Random(args.seed)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        reference = reference_run(root, steps=args.steps, every=args.every)
        crashes = crash_trials(
            root, reference, trials=args.crashes, steps=args.steps, every=args.every, rng=rng
        )
        kills = kill_trials(
            root, reference, trials=args.kills, steps=args.steps, every=args.every, rng=rng
        )
        damages = damage_trials(
            root, reference, trials=args.damages, steps=args.steps, every=args.every, rng=rng
        )
    report = {
        "crash": {"tried": crashes.tried, "survived": crashes.survived, "lost": crashes.lost},
        "kill": {"tried": kills.tried, "survived": kills.survived, "lost": kills.lost},
        "damage": {
            "tried": damages.tried,
            "survived": damages.survived,
            "refused": damages.refused,
            "lost": damages.lost,
        },
    }
    print(json.dumps(report, indent=2))
    lost = len(crashes.lost) + len(kills.lost) + len(damages.lost)
    print(
        f"fault_injection: crashes {crashes.survived}/{crashes.tried} and kills "
        f"{kills.survived}/{kills.tried} resumed to the uninterrupted result; damaged-file checks "
        f"{damages.survived}/{damages.tried} noticed or harmless ({damages.refused} refused in one "
        f"line, the rest loaded intact data); data lost: {lost}"
    )
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
