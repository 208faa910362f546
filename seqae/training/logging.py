"""Metric logging for recipes: TensorBoard scalars/images, a progress bar, a metrics.json.

Typical use in a recipe::

    logger = MetricLogger(run_dir)            # writes run_dir/tb/ on rank 0 only
    for step, batch in progress(loader, desc="train"):
        ...
        logger.scalars({"loss/rec": rec, "loss/kl": kl}, step=step)
    logger.image("recon", fig, step=step)
    logger.close()
    if ctx.is_main:
        write_metrics_json(run_dir / "metrics.json", {"test/nll": nll})
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import torch
from torch import Tensor

from seqae.training.checkpoint import atomic_write_json
from seqae.training.distributed import is_main_process

__all__ = ["MetricLogger", "progress", "write_metrics_json", "to_python_number"]

T = TypeVar("T")


def to_python_number(value: Any) -> float | int | None:
    """A JSON/TensorBoard-friendly number from a Python/NumPy/torch scalar; None for NaN/inf."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"expected a scalar tensor, got shape {tuple(value.shape)}")
        value = value.detach().cpu().item()
    elif hasattr(value, "item") and callable(value.item):  # NumPy scalars and 0-d arrays
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    value = float(value)
    return value if math.isfinite(value) else None


class MetricLogger:
    """A TensorBoard ``SummaryWriter`` that is a no-op where it should not write.

    Args:
        run_dir: The run folder; events go to ``run_dir / subdir``.
        enabled: Whether to write; defaults to "rank 0 of the job", so every rank can call
            the logging methods unconditionally.
        subdir: Sub-folder for event files.
    """

    def __init__(
        self, run_dir: str | os.PathLike[str], *, enabled: bool | None = None, subdir: str = "tb"
    ) -> None:
        self.enabled = is_main_process() if enabled is None else bool(enabled)
        self.log_dir = Path(run_dir) / subdir
        self._writer: Any = None
        if self.enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def scalar(self, tag: str, value: Any, *, step: int) -> None:
        """Log one scalar (tensor, NumPy or Python number); NaN/inf are logged as NaN."""
        if self._writer is None:
            return
        number = to_python_number(value)
        self._writer.add_scalar(tag, float("nan") if number is None else number, step)

    def scalars(self, values: Mapping[str, Any], *, step: int, prefix: str = "") -> None:
        """Log every entry of ``values`` as its own scalar, tags ``prefix + key``."""
        for key, value in values.items():
            self.scalar(f"{prefix}{key}", value, step=step)

    def image(self, tag: str, image: Any, *, step: int, close: bool = True) -> None:
        """Log a matplotlib figure, or an image tensor (CHW, or HW for grey; floats in [0, 1]
        or uint8).

        Args:
            tag: TensorBoard tag.
            image: ``matplotlib.figure.Figure`` or tensor.
            step: Global step.
            close: Close a figure after logging it (frees its memory).
        """
        if self._writer is None:
            if close and hasattr(image, "savefig"):
                import matplotlib.pyplot as plt

                plt.close(image)
            return
        if hasattr(image, "savefig"):
            self._writer.add_figure(tag, image, step, close=close)
            return
        tensor = torch.as_tensor(image).detach().cpu()
        if tensor.dim() == 2:
            tensor = tensor.unsqueeze(0)
        if tensor.dim() != 3 or tensor.shape[0] not in (1, 3, 4):
            raise ValueError(
                f"image {tag!r}: expected a CHW tensor with 1, 3 or 4 channels, or HW, "
                f"got shape {tuple(tensor.shape)}"
            )
        if tensor.is_floating_point():
            tensor = tensor.float().clamp(0.0, 1.0)
        self._writer.add_image(tag, tensor, step, dataformats="CHW")

    def text(self, tag: str, text: str, *, step: int) -> None:
        """Log a text snippet (e.g. generated summaries)."""
        if self._writer is not None:
            self._writer.add_text(tag, text, step)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def progress(
    iterable: Iterable[T],
    *,
    enabled: bool | None = None,
    desc: str | None = None,
    total: int | None = None,
    **tqdm_kwargs: Any,
) -> Iterable[T]:
    """A tqdm progress bar on rank 0 when stderr is a terminal; the bare iterable otherwise.

    Args:
        iterable: What to iterate.
        enabled: Force the bar on or off; by default shown only on rank 0 and on a TTY.
        desc: Bar label.
        total: Length, when ``len(iterable)`` does not work.
        **tqdm_kwargs: Passed to ``tqdm``.
    """
    if enabled is None:
        enabled = is_main_process() and sys.stderr.isatty()
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, dynamic_ncols=True, **tqdm_kwargs)


def write_metrics_json(path: str | os.PathLike[str], metrics: Mapping[str, Any]) -> Path:
    """Write ``metrics`` to ``path`` as JSON, atomically.

    Scalars (tensors, NumPy, Python) become plain numbers, NaN/inf become ``null``; nested
    dicts and lists are converted recursively. Writes unconditionally: guard with
    ``if ctx.is_main`` under torchrun.
    """
    return atomic_write_json(path, _jsonable(dict(metrics)))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | bool) or value is None:
        return value  # booleans stay JSON true/false (TensorBoard scalars still get 0/1)
    if isinstance(value, Tensor) and value.numel() != 1:
        return [_jsonable(v) for v in value.detach().cpu().tolist()]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return to_python_number(value)
