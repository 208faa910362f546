"""The compress recipe on its tiny config: code files, rate accounting, the PCA hull, stages,
resuming between rate points."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from seqae.cli import load_recipe, run_recipe
from seqae.codes import CODINGS, ModelMismatchError, model_codes, read_codes
from seqae.config import ConfigError
from seqae.core import Autoencoder
from seqae.data import load_digits_splits
from seqae.training import RunFolderError
from tests.recipes.resume_checks import Interrupted, comparable, interrupt_after_first_part

TINY = "compress_tiny"
REPO = Path(__file__).resolve().parents[2]
compress = load_recipe(REPO / "recipes" / "compress.py")


def _run(out: Path, *overrides: str) -> dict:
    return run_recipe("compress", config=TINY, overrides=[f"output_dir={out}", *overrides])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("compress") / "run"
    return out, _run(out)


@pytest.fixture(scope="module")
def x_test() -> torch.Tensor:
    return load_digits_splits(val_fraction=0.1, test_fraction=0.2, seed=0).test.tensors()[0]


def test_tiny_run_writes_every_output(tiny_run: tuple[Path, dict]) -> None:
    out, metrics = tiny_run
    assert (out / "config.yaml").is_file()
    assert json.loads((out / "metrics.json").read_text()) == metrics
    for fig in ("rate_distortion", "reconstructions"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000, fig
    assert any((out / "tb").iterdir())
    names = [r["name"] for r in metrics["vqvae"]]
    assert names == ["codebook_size8-num_codes1", "codebook_size16-num_codes2"]
    for name in names:
        assert (out / "parts" / name / "model" / "model.safetensors").is_file()
        assert (out / "parts" / f"{name}.json").is_file()  # the part is done
        for coding in CODINGS:
            assert (out / "parts" / name / f"{name}.{coding}.sqc").is_file()


def test_rate_accounting_matches_the_files(tiny_run: tuple[Path, dict]) -> None:
    _, metrics = tiny_run
    n = metrics["n_test"]
    for record in metrics["vqvae"]:
        symbols = n * record["codes_per_sample"]
        bits = math.ceil(math.log2(record["codebook_size"]))
        for coding, f in record["files"].items():
            size = Path(f["path"]).stat().st_size
            assert size == f["file_bytes"]
            assert f["file_bits_per_sample"] == pytest.approx(8 * size / n)
            payload = f["file_bytes"] - f["header_bytes"]
            assert f["payload_bits_per_sample"] == pytest.approx(8 * payload / n)
            if coding == "packed":
                assert payload == math.ceil(symbols * bits / 8)
        # the adaptive code is within its learning cost of the empirical entropy
        entropy = record["entropy_bits_per_sample"] * n
        adaptive = record["files"]["adaptive"]["payload_bits_per_sample"] * n
        k = record["codebook_size"]
        assert entropy <= adaptive <= entropy + (k - 1) / 2 * math.log2(symbols) + 2 * k + 16


def test_files_decode_to_the_reported_distortion(
    tiny_run: tuple[Path, dict], x_test: torch.Tensor
) -> None:
    out, metrics = tiny_run
    for record in metrics["vqvae"]:
        model = Autoencoder.from_pretrained(out / "parts" / record["name"] / "model")
        expected = model_codes(model, x_test)
        for f in record["files"].values():
            np.testing.assert_array_equal(read_codes(f["path"]).codes, expected)
        mse = torch.mean((model.reconstruct(x_test) - x_test) ** 2).item()
        assert record["mse"] == pytest.approx(mse, rel=1e-5)


def test_pca_grid_and_hull(tiny_run: tuple[Path, dict]) -> None:
    _, metrics = tiny_run
    assert len(metrics["pca_points"]) == 3 * 3 * 2  # components x bits x clip ranges
    for coding, comp in metrics["comparison"].items():
        hull = np.array(comp["pca_hull"])
        points = np.array(
            [[p[f"{coding}_bits_per_sample"], p["mse"]] for p in metrics["pca_points"]]
        )
        assert np.all(np.diff(hull[:, 0]) > 0) and np.all(np.diff(hull[:, 1]) < 0)
        slopes = np.diff(hull[:, 1]) / np.diff(hull[:, 0])
        assert np.all(np.diff(slopes) >= -1e-12)  # convex
        for rate, mse in points:  # no grid point lies below the hull
            at = compress.hull_distortion_at(hull[:, 0], hull[:, 1], rate)
            assert at is None or mse >= at - 1e-12
        for row in comp["rate_points"]:
            if row["pca_hull_mse"] is not None:
                assert row["vqvae_better"] == (row["vqvae_mse"] < row["pca_hull_mse"])
                # time-sharing on the hull is never worse than the best single PCA code
                assert row["pca_hull_mse"] <= row["pca_best_single_mse"] + 1e-12


def test_point_names() -> None:
    assert (
        compress.point_name({"num_codes": 2, "codebook_size": 16}) == "codebook_size16-num_codes2"
    )
    assert compress.point_name({"channels": [16, 32]}) == "channels_16_32"


def test_lower_hull_on_known_points() -> None:
    rates = np.array([1.0, 2.0, 3.0, 4.0, 2.5, 5.0, 6.0])
    dists = np.array([10.0, 5.0, 4.5, 2.0, 9.0, 2.5, 2.0])
    r, d = compress.lower_hull(rates, dists)
    np.testing.assert_array_equal(r, [1.0, 2.0, 4.0])  # (3, 4.5) is above the chord; past 4 no gain
    np.testing.assert_array_equal(d, [10.0, 5.0, 2.0])
    assert compress.hull_distortion_at(r, d, 3.0) == pytest.approx(3.5)
    assert compress.hull_distortion_at(r, d, 0.5) is None
    assert compress.hull_distortion_at(r, d, 9.0) == 2.0


def test_encode_and_decode_stages(
    tiny_run: tuple[Path, dict], tmp_path: Path, x_test: torch.Tensor
) -> None:
    out, metrics = tiny_run
    record = metrics["vqvae"][1]
    model_dir = out / "parts" / record["name"] / "model"
    codes = tmp_path / "codes.sqc"
    enc = _run(tmp_path / "enc", "stage=encode", f"model_dir={model_dir}", f"codes={codes}")
    assert enc["num_samples"] == len(x_test) and enc["coding"] == "adaptive"
    assert enc["file_bytes"] == codes.stat().st_size == record["files"]["adaptive"]["file_bytes"]
    dec = _run(tmp_path / "dec", "stage=decode", f"model_dir={model_dir}", f"codes={codes}")
    assert dec["test_mse"] == pytest.approx(record["mse"], rel=1e-6)
    x_hat = np.load(tmp_path / "dec" / "reconstructions.npy")
    assert x_hat.shape == tuple(x_test.shape)
    other = out / "parts" / metrics["vqvae"][0]["name"] / "model"
    with pytest.raises(ModelMismatchError, match="different model"):
        _run(tmp_path / "bad", "stage=decode", f"model_dir={other}", f"codes={codes}")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["stage=encode"], "needs model_dir"),
        (["stage=zip"], "stage must be one of"),
        (["pca.components=[100]"], r"pca.components \[100\] exceed"),
        (["pca.bits=[0]"], "pca.bits must list ints in 1..16"),
        (["rate_points=[{num_codez: 2}]"], "not a key of vqvae.model"),
        (["rate_points=[]"], "rate_points must be a non-empty list"),
        (["rate_points=[{codebook_size: 1}]"], "codebook_size must be >= 2"),
        (["rate_points=[{num_codes: 80}]"], "80 code vectors per sample exceed the 64"),
        (["codings=[packed, huffman]"], "codings must list some of"),
        (["figure_codings=[zlib]", "codings=[packed]"], "figure_codings"),
    ],
)
def test_impossible_settings_stop_before_training(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _run(tmp_path, *overrides)
    assert not tmp_path.joinpath("parts").exists() and not tmp_path.joinpath("run.json").exists()


def test_interrupted_then_resumed_run_matches_uninterrupted(
    tiny_run: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, full = tiny_run
    out = tmp_path / "run"
    interrupt_after_first_part(monkeypatch)
    with pytest.raises(Interrupted):
        _run(out)
    monkeypatch.undo()
    first, second = (r["name"] for r in full["vqvae"])
    assert (out / "parts" / f"{first}.json").is_file()
    assert not (out / "parts" / f"{second}.json").exists() and not (out / "metrics.json").exists()
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    weights = out / "parts" / first / "model" / "model.safetensors"
    written = weights.stat().st_mtime_ns

    with pytest.raises(RunFolderError, match="already holds a run"):
        _run(out)  # without resume=true the folder is not taken over
    resumed = _run(out, "resume=true")
    assert weights.stat().st_mtime_ns == written  # the first rate point was not trained again
    assert comparable(resumed) == comparable(full)


def test_resume_may_add_rate_points_but_not_change_the_model(
    tiny_run: tuple[Path, dict], tmp_path: Path
) -> None:
    _, full = tiny_run
    out = tmp_path / "run"
    _run(out, "rate_points=[{num_codes: 1, codebook_size: 8}]")
    with pytest.raises(RunFolderError, match=r"vqvae\.model\.code_dim 4 -> 8"):
        _run(out, "resume=true", "vqvae.model.code_dim=8")
    extended = _run(out, "resume=true")  # the tiny config's two rate points
    assert comparable(extended) == comparable(full)


def test_full_config_is_valid() -> None:
    from seqae.cli import find_config
    from seqae.config import load_config

    cfg = load_config(find_config("compress", "compress"))
    compress.validate(cfg)
    assert len(cfg["rate_points"]) == 8
