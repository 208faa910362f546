"""Stop training when a validation metric stops improving; resumable through checkpoints.

Typical use in a recipe::

    stopper = EarlyStopping(patience=5, min_delta=1e-3, mode="min")
    if resumed:
        stopper.load_state_dict(resumed.extra["early_stopping"])
    ...
    if stopper.step(val_loss):
        break
    if stopper.improved:
        save_best(...)
    ckpt.save(step, model=model, extra={"early_stopping": stopper.state_dict()})
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """Patience-based early stopping.

    Args:
        patience: How many consecutive evaluations without improvement are tolerated; the
            ``patience``-th one in a row makes :meth:`step` return True.
        min_delta: A value must beat the best by more than this to count as an improvement.
        mode: ``"min"`` for losses, ``"max"`` for accuracies.
    """

    def __init__(
        self, *, patience: int, min_delta: float = 0.0, mode: Literal["min", "max"] = "min"
    ) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.mode = mode
        self.best: float | None = None
        """Best value seen so far (None before the first :meth:`step`)."""
        self.num_bad = 0
        """Consecutive evaluations without improvement."""
        self.improved = False
        """Whether the latest :meth:`step` set a new best."""
        self.should_stop = False
        """Whether patience has run out."""

    def _is_better(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def step(self, value: Any) -> bool:
        """Record a new metric value; return True when training should stop.

        Args:
            value: The metric (Python number or scalar tensor). NaN never counts as an
                improvement.
        """
        value = float(value.item() if hasattr(value, "item") else value)
        self.improved = self._is_better(value)
        if self.improved:
            self.best = value
            self.num_bad = 0
        else:
            self.num_bad += 1
        self.should_stop = self.num_bad >= self.patience
        return self.should_stop

    def state_dict(self) -> dict[str, Any]:
        """Plain-data state (safe for ``torch.load(weights_only=True)`` and JSON)."""
        return {
            "patience": self.patience,
            "min_delta": self.min_delta,
            "mode": self.mode,
            "best": self.best,
            "num_bad": self.num_bad,
            "improved": self.improved,
            "should_stop": self.should_stop,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore progress from :meth:`state_dict`. The constructor's settings win when they
        differ from the saved ones, so a resumed run may change ``patience``."""
        if state.get("mode", self.mode) != self.mode:
            raise ValueError(
                f"early-stopping state was saved with mode={state['mode']!r} but this "
                f"instance uses mode={self.mode!r}"
            )
        self.best = None if state.get("best") is None else float(state["best"])
        self.num_bad = int(state.get("num_bad", 0))
        self.improved = bool(state.get("improved", False))
        self.should_stop = self.num_bad >= self.patience

    def __repr__(self) -> str:
        return (
            f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, "
            f"mode={self.mode!r}, best={self.best}, num_bad={self.num_bad})"
        )
