"""RunSession: one run per folder, a lock a killed run does not leave behind, resume under the
same config only, falling back from a damaged checkpoint, time budget, parts, metrics.json."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from seqae.training import EarlyStopping, RunFolderError, RunSession


def _cfg(out: Path, **train: object) -> dict:
    return {
        "seed": 0,
        "output_dir": str(out),
        "resume": False,
        "train": {"lr": 1e-3, "epochs": 3, "checkpoint_every": 2, "max_minutes": None, **train},
    }


def _with(cfg: dict, **top: object) -> dict:
    return {**cfg, **top}


def _train(run: RunSession, steps: int) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    resumed = run.resume(model=model, optimizer=opt)
    start = resumed.step if resumed else 0
    for step in range(start, steps):
        loss = model(torch.randn(4, 3)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if run.checkpoint_due(step + 1) or step + 1 == steps:
            run.save(step + 1, model=model, optimizer=opt)
    return model


def test_a_fresh_run_into_another_runs_folder_is_refused(tmp_path: Path) -> None:
    with RunSession(_cfg(tmp_path), recipe="r", verbose=False) as run:
        _train(run, 3)
        run.finish({"x": 1})
    changed = _cfg(tmp_path, lr=3e-3)
    with pytest.raises(RunFolderError, match="already holds a run; resume=true continues it"):
        RunSession(changed, recipe="r").open()
    # what the first run wrote is still there
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"x": 1}
    assert len(list((tmp_path / "checkpoints").glob("step_*.pt"))) == 2
    with RunSession(_with(changed, overwrite=True), recipe="r", verbose=False) as run:
        assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "metrics.json").exists()


def test_resume_under_another_config_is_refused_naming_the_keys(tmp_path: Path) -> None:
    with RunSession(_cfg(tmp_path), recipe="r", verbose=False) as run:
        _train(run, 2)
    changed = _with(_cfg(tmp_path, lr=3e-3), resume=True)
    with pytest.raises(RunFolderError, match=r"another config \(train\.lr 0\.001 -> 0\.003\)"):
        RunSession(changed, recipe="r").open()
    other_recipe = _with(_cfg(tmp_path), resume=True)
    with pytest.raises(RunFolderError, match="holds a run of recipe 'r', not 'q'"):
        RunSession(other_recipe, recipe="q").open()
    # keys that cannot change the result may differ
    neutral = _with(_cfg(tmp_path, max_minutes=5, checkpoint_every=1), resume=True)
    with RunSession(neutral, recipe="r", verbose=False) as run:
        assert run.resume(model=nn.Linear(3, 2)).step == 2


def test_the_issue_scenario_never_resumes_the_older_run(tmp_path: Path) -> None:
    # run 1 finishes; run 2 (another lr) is refused before it writes anything, so a later
    # resume=true of run 2's config cannot pick up run 1's checkpoints
    with RunSession(_cfg(tmp_path), recipe="r", verbose=False) as run:
        _train(run, 4)
    for resume in (False, True):
        with pytest.raises(RunFolderError):
            RunSession(_with(_cfg(tmp_path, lr=3e-3), resume=resume), recipe="r").open()


def test_a_folder_in_use_is_refused_and_released_on_close(tmp_path: Path) -> None:
    first = RunSession(_cfg(tmp_path), recipe="r", verbose=False).open()
    with pytest.raises(RunFolderError, match=f"in use by another run \\(pid {os.getpid()}"):
        RunSession(_with(_cfg(tmp_path), resume=True), recipe="r").open()
    first.close()
    RunSession(_with(_cfg(tmp_path), resume=True), recipe="r", verbose=False).open().close()


def test_a_killed_run_does_not_leave_its_folder_locked(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from seqae.training import RunSession\n"
        f"cfg = {_cfg(tmp_path)!r}\n"
        "run = RunSession(cfg, recipe='r', verbose=False).open()\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError, match="in use"):
            RunSession(_with(_cfg(tmp_path), resume=True), recipe="r").open()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the killed run held no checkpoint: the folder resumes (a fresh start) without help
    with RunSession(_with(_cfg(tmp_path), resume=True), recipe="r", verbose=False):
        pass


def test_output_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "taken.txt"
    target.write_text("keep me")
    with pytest.raises(RunFolderError, match="is a file; expected a folder"):
        RunSession(_cfg(target), recipe="r").open()
    assert target.read_text() == "keep me"


def test_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    with RunSession(_cfg(tmp_path / "full"), recipe="r", verbose=False) as run:
        full = _train(run, 6)
    with RunSession(_cfg(tmp_path / "part"), recipe="r", verbose=False) as run:
        _train(run, 4)  # "killed" after its checkpoint at step 4
    with RunSession(_with(_cfg(tmp_path / "part"), resume=True), recipe="r", verbose=False) as run:
        resumed = _train(run, 6)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_damaged_newest_checkpoint_falls_back_and_is_named(tmp_path: Path, capsys) -> None:
    with RunSession(_cfg(tmp_path), recipe="r") as run:
        _train(run, 4)  # checkpoints at steps 2 and 4
    newest = tmp_path / "checkpoints" / "step_00000004.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    with RunSession(_with(_cfg(tmp_path), resume=True), recipe="r") as run:
        loaded = run.resume(model=nn.Linear(3, 2))
    assert loaded.step == 2
    out = capsys.readouterr().out
    assert "step_00000004.pt is corrupt or truncated" in out and "step_00000002.pt" in out
    # every checkpoint damaged: one line saying so, and how to start again
    for path in (tmp_path / "checkpoints").glob("step_*.pt"):
        path.write_bytes(b"garbage")
    with (
        RunSession(_with(_cfg(tmp_path), resume=True), recipe="r", verbose=False) as run,
        pytest.raises(RunFolderError, match="no older checkpoint is intact.*overwrite=true"),
    ):
        run.resume(model=nn.Linear(3, 2))


def test_tracked_state_and_training_time_survive_a_resume(tmp_path: Path) -> None:
    stopper = EarlyStopping(patience=3)
    with RunSession(_cfg(tmp_path), recipe="r", verbose=False) as run:
        run.track(early_stopping=stopper)
        model = nn.Linear(3, 2)
        run.resume(model=model)
        for value in (3.0, 2.0, 2.5):
            stopper.step(value)
        time.sleep(0.05)
        run.save(3, model=model)
    again = EarlyStopping(patience=3)
    with RunSession(_with(_cfg(tmp_path), resume=True), recipe="r", verbose=False) as run:
        run.track(early_stopping=again)
        run.resume(model=nn.Linear(3, 2))
        assert again.state_dict() == stopper.state_dict()
        assert run.train_seconds >= 0.05  # the first session's time, read from the checkpoint


def test_time_budget_counts_every_session_of_the_run(tmp_path: Path) -> None:
    with RunSession(_cfg(tmp_path, max_minutes=0.001), recipe="r", verbose=False) as run:
        model = nn.Linear(3, 2)
        run.resume(model=model)
        assert not run.out_of_time()
        time.sleep(0.08)
        assert run.out_of_time()
        run.save(1, model=model)
    with RunSession(
        _with(_cfg(tmp_path, max_minutes=0.001), resume=True), recipe="r", verbose=False
    ) as run:
        run.resume(model=nn.Linear(3, 2))
        assert run.out_of_time()  # the earlier session's seconds count


def test_parts_are_computed_once_and_reused_on_resume(tmp_path: Path) -> None:
    calls: list[str] = []

    def compute(name: str) -> dict:
        calls.append(name)
        return {"score": len(name)}

    with RunSession(_cfg(tmp_path), recipe="r", verbose=False) as run:
        assert run.part("seed0", lambda: compute("seed0")) == {"score": 5}
        # "killed" before seed1
    with RunSession(_with(_cfg(tmp_path), resume=True), recipe="r", verbose=False) as run:
        results = [run.part(n, lambda n=n: compute(n)) for n in ("seed0", "seed1")]
        run.finish({"mean": sum(r["score"] for r in results) / 2})
    assert calls == ["seed0", "seed1"] and results == [{"score": 5}, {"score": 5}]
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "finished" and record["recipe"] == "r"
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"mean": 5.0}


def test_an_interrupted_run_is_recorded_and_resumable(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), RunSession(_cfg(tmp_path), recipe="r", verbose=False):
        raise KeyboardInterrupt
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "interrupted"
    with RunSession(_with(_cfg(tmp_path), resume=True), recipe="r", verbose=False):
        pass


def test_a_run_that_failed_before_saving_anything_does_not_block_a_fresh_run(
    tmp_path: Path, capsys
) -> None:
    # e.g. a mistake in the data settings, found after the folder was opened
    with pytest.raises(ValueError), RunSession(_cfg(tmp_path), recipe="r", verbose=False):
        raise ValueError("data.articles is empty")
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "interrupted"
    fixed = _cfg(tmp_path, lr=3e-3)
    with RunSession(fixed, recipe="r") as run:
        _train(run, 2)
    assert "held a run that stopped before its first checkpoint" in capsys.readouterr().out
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "running" and record["config"]["train.lr"] == 3e-3
    # that run saved a checkpoint, then failed: a fresh run is still refused
    with pytest.raises(RunFolderError, match="already holds a run"):
        RunSession(_cfg(tmp_path), recipe="r").open()


def test_a_failed_run_with_a_finished_part_still_blocks_a_fresh_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError), RunSession(_cfg(tmp_path), recipe="r", verbose=False) as run:
        run.part("seed0", lambda: {"score": 1})
        raise ValueError("failed in the second part")
    with pytest.raises(RunFolderError, match="already holds a run"):
        RunSession(_cfg(tmp_path, lr=3e-3), recipe="r").open()
    assert (tmp_path / "parts" / "seed0.json").is_file()
