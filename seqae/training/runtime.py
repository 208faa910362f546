"""Process-level runtime helpers: seeding, device choice, autocast, RNG state, finite checks.

Everything here is a small function a recipe calls explicitly; nothing runs at import time.

    >>> gen = seed_everything(0)
    >>> device = get_device("auto")
    >>> with autocast_context(device):
    ...     loss = model(batch)
    >>> check_finite({"rec": rec, "kl": kl}, step=step, last_checkpoint=ckpt.latest_path)
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "seed_everything",
    "get_device",
    "autocast_context",
    "PRECISIONS",
    "check_precision",
    "cpu_has_native_bf16",
    "resolve_precision",
    "capture_rng_state",
    "restore_rng_state",
    "check_finite",
    "NonFiniteLossError",
    "maybe_compile",
]

DevicePreference = Literal["auto", "cpu", "cuda"] | str


def seed_everything(seed: int, *, deterministic: bool = False) -> torch.Generator:
    """Seed Python's ``random``, NumPy's global RNG, torch's CPU RNG and every CUDA RNG.

    Args:
        seed: The seed. Under torchrun pass ``seed + ctx.rank`` if ranks should draw different
            dropout masks, or the same seed on every rank for identical initial weights (DDP
            also broadcasts rank 0's weights when it wraps the model).
        deterministic: Also ask torch for deterministic kernels
            (``torch.use_deterministic_algorithms``, cuDNN deterministic, no cuDNN autotuning,
            and ``CUBLAS_WORKSPACE_CONFIG`` when it is unset). Slower on GPU; on CPU the
            usual kernels are already deterministic.

    Returns:
        A fresh CPU ``torch.Generator`` seeded with ``seed``, for data shuffling or
        initialisation that should not share the global stream.
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def get_device(preference: DevicePreference = "auto") -> torch.device:
    """Pick the device a process should compute on.

    Args:
        preference: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` (an
            error when CUDA is unavailable) or an explicit ``"cuda:N"``. For ``"auto"`` and
            ``"cuda"`` under torchrun the device index is ``LOCAL_RANK``, so each process of a
            node gets its own GPU.

    Returns:
        The chosen ``torch.device``.
    """
    pref = str(preference).strip().lower()
    if pref == "cpu":
        return torch.device("cpu")
    if pref not in ("auto", "cuda") and not pref.startswith("cuda:"):
        raise ValueError(f"device preference must be 'auto', 'cpu' or 'cuda', got {preference!r}")
    if not torch.cuda.is_available():
        if pref == "auto":
            return torch.device("cpu")
        raise RuntimeError(
            f"device {preference!r} was requested but CUDA is not available on this machine; "
            "use device=auto or device=cpu"
        )
    if pref.startswith("cuda:"):
        return torch.device(pref)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise RuntimeError(
            f"LOCAL_RANK={local_rank} but only {count} CUDA device(s) are visible; "
            "start fewer processes per node (torchrun --nproc_per_node)"
        )
    return torch.device("cuda", local_rank)


PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX), read from Linux's
    ``/proc/cpuinfo``; False where that cannot be read.

    Without it, oneDNN emulates bf16 and autocast is slower than float32; with it, the
    convolutions of the voice-conversion models train about 1.75 times faster
    (``benchmarks/bench_train_step.py``).
    """
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def check_precision(precision: Any, *, name: str = "precision") -> str:
    """Return ``precision`` if it is one of :data:`PRECISIONS`; else a ValueError naming
    ``name`` (a config key such as ``"train.precision"``), the value and the choices."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"{name} must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """A ``precision`` setting -> ``"fp32"`` or ``"bf16"`` for ``device``.

    ``"auto"`` is bf16 on CUDA and on CPUs with native bf16 (:func:`cpu_has_native_bf16`),
    float32 elsewhere. ``"bf16"`` and ``"fp32"`` are taken as they are.

    Raises:
        ValueError: An unknown setting.
    """
    if check_precision(precision) != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
        return "bf16"
    return "fp32"


def autocast_context(
    device: torch.device | str,
    *,
    enabled: bool = True,
    dtype: torch.dtype = torch.bfloat16,
    precision: str | None = None,
) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision where it helps.

    Without ``precision``: bf16 ``torch.autocast`` on CUDA, a no-op elsewhere (on CPUs without
    native bf16, autocast is slower than float32 for these small models). With ``precision``
    (a :data:`PRECISIONS` setting, resolved by :func:`resolve_precision`): bf16 autocast on
    ``device`` whatever its type when it resolves to ``"bf16"``, a no-op for ``"fp32"``.
    bf16 needs no gradient scaler; parameters and optimizer state stay float32.

    Args:
        device: The device the forward pass runs on.
        enabled: Set False to force full precision (e.g. from a ``amp=false`` config flag).
        dtype: Autocast dtype on CUDA when ``precision`` is not given.
        precision: ``"auto"``, ``"fp32"`` or ``"bf16"``; None keeps the CUDA-only default.
    """
    device = torch.device(device)
    if not enabled:
        return contextlib.nullcontext()
    if precision is not None:
        if resolve_precision(precision, device) == "bf16":
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=dtype)
    return contextlib.nullcontext()


def maybe_compile(module: nn.Module, enabled: bool, *, backend: str = "inductor") -> nn.Module:
    """``torch.compile(module)`` when ``enabled`` (a recipe's ``train.compile``), else ``module``.

    The compiled module shares its parameters with ``module``: optimise, checkpoint and save the
    plain one. Compiling costs seconds to minutes up front and pays in long runs of small,
    fixed-shape models (``benchmarks/bench_vae_pythae.py`` measures it); the recipes' configs
    say where it is on.

    Args:
        module: The module (or DDP wrapper) whose forward is compiled.
        enabled: Whether to compile.
        backend: The ``torch.compile`` backend (``"eager"`` checks the wiring without
            compiling).
    """
    if not enabled:
        return module
    return torch.compile(module, backend=backend)


# -- RNG state ---------------------------------------------------------------------------------


def capture_rng_state() -> dict[str, Any]:
    """Snapshot Python, NumPy, torch CPU and all CUDA RNG states.

    The result holds only tensors, ints, floats, strings and None, so it survives
    ``torch.save`` followed by ``torch.load(weights_only=True)``.
    """
    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {
            "version": int(py_version),
            "state": torch.tensor(py_internal, dtype=torch.int64),
            "gauss_next": None if py_gauss is None else float(py_gauss),
        },
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64).copy()),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
        # Only when CUDA is in use: never initialise CUDA just to read untouched generators.
        "cuda": [s.cpu() for s in torch.cuda.get_rng_state_all()]
        if torch.cuda.is_available() and torch.cuda.is_initialized()
        else [],
    }
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore a snapshot made by :func:`capture_rng_state`.

    CUDA states are restored for as many devices as both the snapshot and this machine have;
    a snapshot taken with CUDA restored on a CPU-only machine warns and skips the CUDA part.
    """
    py = state["python"]
    random.setstate(
        (int(py["version"]), tuple(int(x) for x in py["state"].tolist()), py["gauss_next"])
    )
    npst = state["numpy"]
    np.random.set_state(
        (
            npst["name"],
            npst["keys"].numpy().astype(np.uint32),
            int(npst["pos"]),
            int(npst["has_gauss"]),
            float(npst["cached_gaussian"]),
        )
    )
    torch.set_rng_state(state["torch"].cpu())
    cuda_states = list(state.get("cuda") or [])
    if cuda_states:
        if not torch.cuda.is_available():
            warnings.warn(
                "the RNG snapshot has CUDA generator states but CUDA is not available; "
                "only the CPU generators were restored",
                stacklevel=2,
            )
            return
        n = min(len(cuda_states), torch.cuda.device_count())
        for index in range(n):
            torch.cuda.set_rng_state(cuda_states[index].cpu(), index)


# -- finite checks -----------------------------------------------------------------------------


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite.

    Attributes:
        step: The optimisation step at which it happened.
        name: Which loss term (``"loss"`` when a single tensor was checked).
        value: The offending value (``nan``, ``inf`` or ``-inf``).
        last_checkpoint: Path of the last good checkpoint, when the caller knew it.
    """

    def __init__(
        self, step: int, name: str, value: float, last_checkpoint: str | Path | None = None
    ) -> None:
        self.step = int(step)
        self.name = name
        self.value = float(value)
        self.last_checkpoint = None if last_checkpoint is None else Path(last_checkpoint)
        where = (
            f"the last good checkpoint is kept at {self.last_checkpoint}"
            if self.last_checkpoint is not None
            else "no checkpoint had been saved yet"
        )
        super().__init__(
            f"loss {name!r} became {self.value} at step {self.step}; {where}. "
            "Lower the learning rate, enable gradient clipping or check the data, then resume."
        )

    def __reduce__(self) -> tuple[Any, ...]:  # keep picklable for multiprocessing
        return (type(self), (self.step, self.name, self.value, self.last_checkpoint))


def check_finite(
    loss_or_dict: Tensor | float | Mapping[str, Tensor | float],
    *,
    step: int,
    last_checkpoint: str | Path | None = None,
) -> None:
    """Raise :class:`NonFiniteLossError` when any loss term is NaN or infinite.

    One host-device synchronisation for the whole dict. Call it before ``backward()`` so the
    bad step never reaches the weights, and before saving so a poisoned model is never
    checkpointed. Under torchrun a raising rank makes torchrun stop the other ranks.

    Args:
        loss_or_dict: A scalar loss, or a dict of named scalar terms (only entries that are
            tensors or numbers are checked).
        step: Current optimisation step, reported in the message.
        last_checkpoint: Path of the last checkpoint written (e.g.
            :attr:`CheckpointManager.latest_path`), reported in the message.
    """
    # the common case, one scalar loss: one host read, no kernel launched
    if (
        isinstance(loss_or_dict, Tensor)
        and loss_or_dict.numel() == 1
        and not loss_or_dict.is_complex()
        and math.isfinite(loss_or_dict.item())
    ):
        return
    if isinstance(loss_or_dict, Mapping):
        items = [
            (str(k), v) for k, v in loss_or_dict.items() if isinstance(v, Tensor | float | int)
        ]
    else:
        items = [("loss", loss_or_dict)]
    tensors = [v.detach().float().reshape(-1) for _, v in items if isinstance(v, Tensor)]
    floats_ok = all(math.isfinite(float(v)) for _, v in items if not isinstance(v, Tensor))
    tensors_ok = True
    if tensors:
        devices = {t.device for t in tensors}
        flat = torch.cat(tensors) if len(devices) == 1 else torch.cat([t.cpu() for t in tensors])
        tensors_ok = bool(torch.isfinite(flat).all())
    if floats_ok and tensors_ok:
        return
    for name, value in items:
        if isinstance(value, Tensor):
            bad = value.detach().float().reshape(-1)
            bad = bad[~torch.isfinite(bad)]
            if bad.numel():
                raise NonFiniteLossError(step, name, float(bad[0]), last_checkpoint)
        elif not math.isfinite(float(value)):
            raise NonFiniteLossError(step, name, float(value), last_checkpoint)
