"""Seeding, devices, autocast, RNG snapshots and finite checks."""

from __future__ import annotations

import contextlib
import pickle
import random

import numpy as np
import pytest
import torch

from seqae.training import (
    NonFiniteLossError,
    autocast_context,
    capture_rng_state,
    check_finite,
    check_precision,
    cpu_has_native_bf16,
    get_device,
    resolve_precision,
    restore_rng_state,
    seed_everything,
)


def _draw() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_seed_everything_reproduces_every_stream() -> None:
    gen = seed_everything(123)
    first = _draw(), torch.rand(3, generator=gen)
    gen = seed_everything(123)
    second = _draw(), torch.rand(3, generator=gen)
    assert first[0] == second[0]
    assert torch.equal(first[1], second[1])
    seed_everything(124)
    assert _draw() != first[0]


def test_seed_everything_deterministic_flag() -> None:
    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


def test_rng_state_round_trips_through_weights_only_load(tmp_path) -> None:
    seed_everything(5)
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state
    np.random.randn()  # ... and in NumPy's
    state = capture_rng_state()
    torch.save(state, tmp_path / "rng.pt")
    expected = [_draw() for _ in range(3)], random.gauss(0, 1), float(np.random.randn())

    seed_everything(999)  # scramble
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = [_draw() for _ in range(3)], random.gauss(0, 1), float(np.random.randn())
    assert got == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the CPU-only fallback")
def test_restore_cuda_state_on_cpu_machine_warns() -> None:
    state = capture_rng_state()
    state["cuda"] = [torch.zeros(16, dtype=torch.uint8)]
    with pytest.warns(UserWarning, match="CUDA is not available"):
        restore_rng_state(state)


def test_get_device() -> None:
    assert get_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device preference"):
        get_device("tpu")
    if torch.cuda.is_available():
        assert get_device("auto").type == "cuda"
    else:
        assert get_device("auto") == torch.device("cpu")
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            get_device("cuda")


def test_autocast_is_a_noop_on_cpu() -> None:
    ctx = autocast_context(torch.device("cpu"))
    assert isinstance(ctx, contextlib.nullcontext)
    with ctx:
        out = torch.ones(2, 2) @ torch.ones(2, 2)
    assert out.dtype == torch.float32


def test_precision_bf16_autocasts_on_cpu_and_fp32_does_not() -> None:
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with autocast_context("cpu", precision="bf16"):
        out = a @ b
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), a @ b, rtol=2e-2, atol=2e-2)
    with autocast_context("cpu", precision="fp32"):
        assert (a @ b).dtype == torch.float32
    with autocast_context("cpu", precision="bf16", enabled=False):
        assert (a @ b).dtype == torch.float32


def test_auto_precision_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import seqae.training.runtime as runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    with autocast_context("cpu", precision="auto"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    with autocast_context("cpu", precision="auto"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert resolve_precision("auto", "cuda") == "bf16"
    assert resolve_precision("fp32", "cuda") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, got .fp16."):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        autocast_context("cpu", precision="half")
    # a config value: named by its key; only the exact strings pass (not True, None or "BF16")
    assert check_precision("bf16", name="train.precision") == "bf16"
    for bad in (True, None, "BF16", ["bf16"]):
        with pytest.raises(ValueError, match=r"train.precision must be one of auto, fp32, bf16"):
            check_precision(bad, name="train.precision")


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ("fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni", True),
        ("fpu sse2 avx2 amx_bf16 amx_tile", True),
        ("fpu sse2 avx2 avx512f avx512bw", False),
    ],
)
def test_native_bf16_is_read_from_the_cpu_flags(
    monkeypatch: pytest.MonkeyPatch, tmp_path, flags: str, native: bool
) -> None:
    import builtins

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n\n")
    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        return real_open(cpuinfo if path == "/proc/cpuinfo" else path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    assert cpu_has_native_bf16() is native


def test_native_bf16_is_false_where_cpuinfo_cannot_be_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import builtins

    def no_file(*args, **kwargs):
        raise FileNotFoundError("/proc/cpuinfo")

    monkeypatch.setattr(builtins, "open", no_file)
    assert cpu_has_native_bf16() is False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_autocast_uses_bf16_on_cuda() -> None:
    with autocast_context(torch.device("cuda")):
        out = torch.ones(2, 2, device="cuda") @ torch.ones(2, 2, device="cuda")
    assert out.dtype == torch.bfloat16
    with autocast_context(torch.device("cuda"), enabled=False):
        out = torch.ones(2, 2, device="cuda") @ torch.ones(2, 2, device="cuda")
    assert out.dtype == torch.float32


def test_check_finite_passes_finite_values() -> None:
    check_finite(torch.tensor(1.5), step=0)
    check_finite(2.0, step=0)
    check_finite({"rec": torch.tensor(1.0), "kl": 0.5, "note": "ignored"}, step=0)


def test_check_finite_names_the_term_step_and_checkpoint() -> None:
    with pytest.raises(NonFiniteLossError) as info:
        check_finite(
            {"rec": torch.tensor(1.0), "kl": torch.tensor(float("nan"))},
            step=120,
            last_checkpoint="runs/x/checkpoints/step_00000100.pt",
        )
    err = info.value
    assert (err.step, err.name) == (120, "kl")
    assert np.isnan(err.value)
    assert "loss 'kl' became nan at step 120" in str(err)
    assert "runs/x/checkpoints/step_00000100.pt" in str(err)


def test_check_finite_single_tensor_and_float() -> None:
    with pytest.raises(NonFiniteLossError, match="loss 'loss' became inf at step 3") as info:
        check_finite(torch.tensor([1.0, float("inf")]), step=3)
    assert "no checkpoint had been saved yet" in str(info.value)
    with pytest.raises(NonFiniteLossError, match="'total' became -inf"):
        check_finite({"total": float("-inf")}, step=1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_check_finite_scalar_loss_fast_path(bad: float) -> None:
    # one scalar loss (with or without a graph): read once, no kernels; still names the value
    loss = torch.tensor(bad, requires_grad=True) * 2.0
    with pytest.raises(NonFiniteLossError, match=f"became {bad}") as info:
        check_finite(loss, step=5)
    assert info.value.step == 5
    check_finite(torch.tensor([3.0]), step=0)
    check_finite(torch.tensor(2, dtype=torch.int64), step=0)


def test_non_finite_error_pickles() -> None:
    err = NonFiniteLossError(7, "rec", float("nan"), "a/b.pt")
    again = pickle.loads(pickle.dumps(err))
    assert (again.step, again.name, str(again)) == (7, "rec", str(err))
