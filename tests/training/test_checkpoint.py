"""Atomic writes and CheckpointManager: crashes, pruning, mismatches, corruption, safety."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn

from seqae.training import (
    CheckpointCorruptError,
    CheckpointManager,
    CheckpointMismatchError,
    NonFiniteLossError,
    atomic_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_finite,
    model_fingerprint,
    save_safetensors_atomic,
)
from seqae.training import checkpoint as checkpoint_module


def _model(out: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, out))


def _files(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- atomic writes -----------------------------------------------------------------------------


def test_atomic_save_crash_in_replace_keeps_previous_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "obj.pt"
    atomic_save({"v": torch.arange(3)}, path)

    def boom(src, dst):
        raise OSError("disk vanished")

    monkeypatch.setattr(checkpoint_module.os, "replace", boom)
    with pytest.raises(OSError, match="disk vanished"):
        atomic_save({"v": torch.arange(5)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["v"], torch.arange(3))
    assert _files(tmp_path) == ["obj.pt"]  # the temp file was removed


def test_atomic_save_crash_midway_through_torch_save(tmp_path, monkeypatch) -> None:
    path = tmp_path / "obj.pt"
    atomic_save({"v": torch.arange(3)}, path)
    real_save = torch.save

    def half_save(obj, f):
        real_save(obj, f)
        f.truncate(10)  # a torn write ...
        raise KeyboardInterrupt  # ... interrupted by a kill

    monkeypatch.setattr(checkpoint_module.torch, "save", half_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"v": torch.arange(5)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["v"], torch.arange(3))
    assert _files(tmp_path) == ["obj.pt"]


def test_atomic_text_json_and_safetensors(tmp_path) -> None:
    from safetensors.torch import load_file

    atomic_write_text(tmp_path / "a" / "t.txt", "héllo\n")
    assert (tmp_path / "a" / "t.txt").read_text(encoding="utf-8") == "héllo\n"
    atomic_write_json(tmp_path / "m.json", {"x": 1, "y": [1.5]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"x": 1, "y": [1.5]}
    weights = {"w": torch.randn(3, 4).t(), "b": torch.zeros(2)}  # non-contiguous on purpose
    save_safetensors_atomic(weights, tmp_path / "model.safetensors", metadata={"k": "v"})
    back = load_file(tmp_path / "model.safetensors")
    assert torch.equal(back["w"], weights["w"]) and torch.equal(back["b"], weights["b"])
    (tmp_path / "plain.txt").write_text("x")  # atomic files get the usual permissions
    assert os.stat(tmp_path / "m.json").st_mode == os.stat(tmp_path / "plain.txt").st_mode


def test_files_written_together_share_one_directory_sync(tmp_path, monkeypatch) -> None:
    # every file is fsynced before its rename; the directory is synced once, after the last
    # rename (Autoencoder.save_pretrained writes two files this way)
    from seqae.core import Autoencoder

    synced_dirs: list[str] = []
    import seqae.files as files_module

    real = files_module._fsync_dir
    monkeypatch.setattr(files_module, "_fsync_dir", lambda d: (synced_dirs.append(str(d)), real(d)))
    atomic_write_text(tmp_path / "a.txt", "a", sync_dir=False)
    assert synced_dirs == [] and (tmp_path / "a.txt").read_text() == "a"
    model = Autoencoder.stacked([6, 4, 2])
    model.save_pretrained(tmp_path / "model")
    assert synced_dirs == [str(tmp_path / "model")]
    again = Autoencoder.from_pretrained(tmp_path / "model")
    x = torch.randn(3, 6)
    assert torch.equal(again.reconstruct(x), model.reconstruct(x))


def test_atomic_write_through_a_symlink_replaces_its_target(tmp_path) -> None:
    # the temp file goes beside the resolved target, which is replaced; the link stays a link
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "target.txt"
    target.write_text("old")
    link = tmp_path / "l.txt"
    link.symlink_to(target)
    chain = tmp_path / "chain.txt"
    chain.symlink_to(link)
    atomic_write_text(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"
    atomic_write_json(chain, {"k": 1})
    assert chain.is_symlink() and link.is_symlink()
    assert json.loads(target.read_text()) == {"k": 1}
    assert _files(tmp_path) == ["chain.txt", "l.txt", "real"]
    assert _files(tmp_path / "real") == ["target.txt"]  # no temp file left anywhere
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(tmp_path / "real" / "new.txt")
    atomic_save({"v": torch.arange(2)}, dangling)
    assert dangling.is_symlink()
    assert torch.equal(
        torch.load(tmp_path / "real" / "new.txt", weights_only=True)["v"], torch.arange(2)
    )


def test_atomic_write_refuses_a_fifo_and_a_link_loop(tmp_path) -> None:
    from seqae.files import OutputNotRegularFileError

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "to_pipe"
    link.symlink_to(fifo)
    for path in (fifo, link):
        with pytest.raises(OutputNotRegularFileError, match="is a FIFO"):
            atomic_write_text(path, "x")
    with pytest.raises(OutputNotRegularFileError, match="is a folder"):
        atomic_write_bytes(tmp_path, b"x")
    assert isinstance(OutputNotRegularFileError("m"), ValueError)
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(OutputNotRegularFileError, match="loop"):
        atomic_write_text(tmp_path / "a", "x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and link.is_symlink()
    assert (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink()
    assert _files(tmp_path) == ["a", "b", "pipe", "to_pipe"]


# -- CheckpointManager -------------------------------------------------------------------------


def test_save_load_round_trip_with_optimizer_scheduler_and_extra(tmp_path) -> None:
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    sched.step()
    ckpt = CheckpointManager(tmp_path / "checkpoints")
    path = ckpt.save(7, model=model, optimizer=opt, scheduler=sched, extra={"epoch": 2})
    assert path.name == "step_00000007.pt"
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step_00000007.pt"

    fresh = _model()
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.1)
    fresh_sched = torch.optim.lr_scheduler.StepLR(fresh_opt, step_size=1, gamma=0.5)
    loaded = ckpt.load_latest(model=fresh, optimizer=fresh_opt, scheduler=fresh_sched)
    assert loaded is not None and loaded.step == 7 and loaded.extra == {"epoch": 2}
    for a, b in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(a, b)
    assert fresh_sched.get_last_lr() == sched.get_last_lr()
    assert torch.equal(
        fresh_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"]
    )


def test_load_latest_returns_none_without_checkpoints(tmp_path) -> None:
    assert CheckpointManager(tmp_path / "none").load_latest(model=_model()) is None


def test_prunes_old_checkpoints_but_never_the_new_one(tmp_path) -> None:
    model = _model()
    ckpt = CheckpointManager(tmp_path, keep_last=2)
    for step in (1, 2, 3, 4):
        ckpt.save(step, model=model)
    assert [p.name for p in ckpt.checkpoints()] == ["step_00000003.pt", "step_00000004.pt"]
    # A restarted run that saves a lower step keeps the file it just wrote.
    ckpt1 = CheckpointManager(tmp_path, keep_last=1)
    ckpt1.save(2, model=model)
    assert "step_00000002.pt" in [p.name for p in ckpt1.checkpoints()]
    assert ckpt1.latest_path.name == "step_00000002.pt"
    assert ckpt1.load_latest(model=model).step == 2


def test_crash_during_checkpoint_save_keeps_previous_checkpoint(tmp_path, monkeypatch) -> None:
    model = _model()
    ckpt = CheckpointManager(tmp_path, keep_last=2)
    ckpt.save(1, model=model)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model[0].weight.add_(1.0)

    def boom(src, dst):
        raise OSError("killed")

    monkeypatch.setattr(checkpoint_module.os, "replace", boom)
    with pytest.raises(OSError):
        ckpt.save(2, model=model)
    monkeypatch.undo()
    assert _files(tmp_path) == ["latest", "step_00000001.pt"]  # no partial step 2 anywhere
    fresh = _model()
    assert ckpt.load_latest(model=fresh).step == 1
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, saved[key])


def test_nonfinite_loss_raises_and_last_good_checkpoint_is_intact(tmp_path) -> None:
    torch.manual_seed(0)
    model = _model(out=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ckpt = CheckpointManager(tmp_path / "checkpoints")
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    good = None
    with pytest.raises(NonFiniteLossError) as info:
        for step in range(1, 10):
            if step == 4:
                x = x.clone()
                x[0, 0] = float("nan")  # poisoned batch
            loss = nn.functional.mse_loss(model(x), y)
            check_finite({"mse": loss}, step=step, last_checkpoint=ckpt.latest_path)
            opt.zero_grad()
            loss.backward()
            opt.step()
            ckpt.save(step, model=model, optimizer=opt)
            good = {k: v.clone() for k, v in model.state_dict().items()}
    err = info.value
    assert err.step == 4 and err.name == "mse"
    assert str(tmp_path / "checkpoints" / "step_00000003.pt") in str(err)
    fresh = _model(out=1)
    assert ckpt.load_latest(model=fresh).step == 3
    for key, value in fresh.state_dict().items():
        assert torch.isfinite(value).all()
        assert torch.equal(value, good[key])


def test_loading_into_a_different_model_names_the_keys(tmp_path) -> None:
    ckpt = CheckpointManager(tmp_path)
    ckpt.save(1, model=_model(out=3))
    other = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 5), nn.Linear(5, 2))
    with pytest.raises(CheckpointMismatchError) as info:
        ckpt.load_latest(model=other)
    message = str(info.value)
    assert "step_00000001.pt" in message and "different model" in message
    assert "2.weight (3, 8) vs (5, 8)" in message
    assert "3.weight" in message and "3.bias" in message
    assert info.value.missing == ["3.bias", "3.weight"]
    assert set(info.value.shape_mismatches) == {"2.weight", "2.bias"}
    assert model_fingerprint(other) != model_fingerprint(_model())


def test_truncated_checkpoint_names_the_file_and_the_older_one(tmp_path) -> None:
    model = _model()
    ckpt = CheckpointManager(tmp_path, keep_last=3)
    ckpt.save(1, model=model)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    path2 = ckpt.save(2, model=model)
    data = path2.read_bytes()
    path2.write_bytes(data[: len(data) // 2])

    with pytest.raises(CheckpointCorruptError) as info:
        ckpt.load_latest(model=_model())
    message = str(info.value)
    assert str(path2) in message and "corrupt or truncated" in message
    assert "step_00000001.pt" in message and "fallback=True" in message
    assert info.value.fallback == tmp_path / "step_00000001.pt"

    fresh = _model()
    with pytest.warns(UserWarning, match="Falling back"):
        loaded = ckpt.load_latest(model=fresh, fallback=True)
    assert loaded.step == 1 and loaded.path.name == "step_00000001.pt"


def test_garbage_file_without_older_checkpoint(tmp_path) -> None:
    ckpt = CheckpointManager(tmp_path)
    (tmp_path / "step_00000005.pt").write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointCorruptError, match="step_00000005.pt"):
        ckpt.load_latest(model=_model(), fallback=True)


def test_foreign_torch_file_is_not_a_seqae_checkpoint(tmp_path) -> None:
    torch.save({"weights": torch.zeros(1)}, tmp_path / "step_00000001.pt")
    with pytest.raises(CheckpointCorruptError, match="not a seqae checkpoint"):
        CheckpointManager(tmp_path).load_latest(model=_model())


SIDE_EFFECTS: list[str] = []


def _evil(tag: str) -> str:
    SIDE_EFFECTS.append(tag)
    return tag


class Evil:
    """Unpickling this would run ``_evil`` (arbitrary code)."""

    def __reduce__(self):
        return (_evil, ("pwned",))


def test_checkpoint_with_arbitrary_pickled_object_is_refused(tmp_path) -> None:
    model = _model()
    payload = {
        "format": checkpoint_module.CHECKPOINT_FORMAT,
        "step": 1,
        "model": model.state_dict(),
        "model_fingerprint": model_fingerprint(model),
        "optimizer": None,
        "scheduler": None,
        "rng": [],
        "world_size": 1,
        "extra": {"payload": Evil()},
    }
    torch.save(payload, tmp_path / "step_00000001.pt")
    SIDE_EFFECTS.clear()
    with pytest.raises(CheckpointCorruptError, match="weights_only=True"):
        CheckpointManager(tmp_path).load_latest(model=model)
    assert SIDE_EFFECTS == []  # nothing was executed
    torch.load(tmp_path / "step_00000001.pt", weights_only=False)  # the file itself is fine
    assert SIDE_EFFECTS == ["pwned"]


def test_extra_that_cannot_be_loaded_back_is_rejected_before_writing(tmp_path) -> None:
    ckpt = CheckpointManager(tmp_path)
    with pytest.raises(TypeError, match=r"extra\['best'\] is a numpy"):
        ckpt.save(1, model=_model(), extra={"best": np.float64(0.5)})
    with pytest.raises(TypeError, match=r"extra\['obj'\]\[0\]"):
        ckpt.save(1, model=_model(), extra={"obj": [Evil()]})
    assert not tmp_path.exists() or _files(tmp_path) == []
    ckpt.save(1, model=_model(), extra={"best": 0.5, "hist": [1, 2.0, None], "t": torch.ones(2)})
    assert ckpt.load_latest(model=_model()).extra["best"] == 0.5


@pytest.fixture
def single_process_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_ddp_wrapped_model_is_saved_unwrapped(tmp_path, single_process_group) -> None:
    from torch.nn.parallel import DistributedDataParallel

    wrapped = DistributedDataParallel(_model())
    ckpt = CheckpointManager(tmp_path / "ck")
    ckpt.save(3, model=wrapped)
    state = CheckpointManager.read(ckpt.latest_path)["model"]
    assert all(not key.startswith("module.") for key in state)
    bare = _model()
    assert ckpt.load_latest(model=bare).step == 3  # loads into a bare model ...
    assert ckpt.load_latest(model=DistributedDataParallel(bare)).step == 3  # ... or a wrapped one


def test_a_flipped_bit_anywhere_in_a_checkpoint_is_detected(tmp_path) -> None:
    # torch.load checks no CRC: without the seal most flips load as silently different weights
    import random

    model = _model()
    ckpt = CheckpointManager(tmp_path / "ck")
    path = ckpt.save(1, model=model)
    data = path.read_bytes()
    expected = CheckpointManager.read(path)["model"]
    rng = random.Random(0)
    for _ in range(40):
        damaged = bytearray(data)
        damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(damaged))
        try:
            state = CheckpointManager.read(path)["model"]
        except CheckpointCorruptError:
            continue
        # a flip in bytes that hold no data (zip padding, an unused field) changes nothing
        assert all(torch.equal(state[k], expected[k]) for k in expected)


def test_version_1_checkpoints_still_load(tmp_path) -> None:
    from seqae.training.checkpoint import model_fingerprint

    model = _model()
    state = model.state_dict()
    payload = {
        "format": "seqae.checkpoint/1",
        "step": 7,
        "model": state,
        "model_fingerprint": model_fingerprint(state),
        "optimizer": None,
        "scheduler": None,
        "rng": [],
        "world_size": 1,
        "extra": {"epoch": 2},
    }
    (tmp_path / "step_00000007.pt").parent.mkdir(exist_ok=True)
    torch.save(payload, tmp_path / "step_00000007.pt")
    loaded = CheckpointManager(tmp_path).load_latest(model=_model())
    assert loaded.step == 7 and loaded.extra == {"epoch": 2}
