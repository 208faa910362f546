"""MetricLogger (TensorBoard), progress bars and metrics.json."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
import torch

from seqae.training import MetricLogger, progress, write_metrics_json

matplotlib.use("Agg")


def _events(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_metric_logger_writes_scalars_and_images(tmp_path) -> None:
    import matplotlib.pyplot as plt

    with MetricLogger(tmp_path, enabled=True) as logger:
        logger.scalars({"rec": torch.tensor(1.5), "kl": np.float32(0.25)}, step=1, prefix="loss/")
        logger.scalar("lr", 1e-3, step=1)
        logger.scalar("loss/rec", 1.0, step=2)
        logger.image("chw", torch.rand(3, 8, 8), step=1)
        logger.image("grey", torch.rand(8, 8), step=1)
        logger.image("u8", torch.randint(0, 255, (1, 4, 4), dtype=torch.uint8), step=1)
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        logger.image("fig", fig, step=1)
        logger.text("summary", "hello", step=1)
        with pytest.raises(ValueError, match="CHW"):
            logger.image("bad", torch.rand(2, 3, 4, 5), step=1)
    assert not plt.fignum_exists(fig.number)  # closed after logging

    acc = _events(tmp_path / "tb")
    tags = acc.Tags()
    assert {"loss/rec", "loss/kl", "lr"} <= set(tags["scalars"])
    assert {"chw", "grey", "u8", "fig"} <= set(tags["images"])
    assert [(e.step, e.value) for e in acc.Scalars("loss/rec")] == [(1, 1.5), (2, 1.0)]
    assert acc.Scalars("loss/kl")[0].value == pytest.approx(0.25)


def test_disabled_logger_writes_nothing(tmp_path) -> None:
    logger = MetricLogger(tmp_path / "run", enabled=False)
    logger.scalar("x", 1.0, step=0)
    logger.image("img", torch.rand(3, 4, 4), step=0)
    logger.close()
    assert not (tmp_path / "run").exists()


def test_logger_is_off_on_nonzero_rank_by_default(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    logger = MetricLogger(tmp_path / "run")
    assert not logger.enabled
    logger.scalar("x", 1.0, step=0)
    assert not (tmp_path / "run").exists()


def test_progress() -> None:
    items = [1, 2, 3]
    assert progress(items, enabled=False) is items
    assert list(progress(items, enabled=True, desc="t", disable=False, file=None)) == items


def test_write_metrics_json_converts_numbers(tmp_path) -> None:
    path = write_metrics_json(
        tmp_path / "metrics.json",
        {
            "nll": torch.tensor(1.25),
            "acc": np.float64(0.5),
            "n": np.int64(3),
            "bad": float("nan"),
            "nested": {"x": [torch.tensor(2.0), 1]},
            "vec": torch.tensor([1.0, 2.0]),
            "name": "run",
        },
    )
    assert json.loads(path.read_text()) == {
        "nll": 1.25,
        "acc": 0.5,
        "n": 3,
        "bad": None,
        "nested": {"x": [2.0, 1]},
        "vec": [1.0, 2.0],
        "name": "run",
    }


def test_metrics_json_keeps_booleans(tmp_path) -> None:
    import json

    from seqae.training import write_metrics_json

    write_metrics_json(tmp_path / "m.json", {"target_met": True, "n": 3, "x": float("nan")})
    assert json.loads((tmp_path / "m.json").read_text()) == {"target_met": True, "n": 3, "x": None}
