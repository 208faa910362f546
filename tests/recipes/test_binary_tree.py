"""binary_tree on its tiny config: outputs, tree bookkeeping, the min-size guard, resume, bad
settings; and tree building/routing with hand-made splits whose answers are known."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
import torch

import seqae
from seqae.cli import find_recipe, load_recipe, run_recipe
from seqae.config import ConfigError
from seqae.core.classifier import BitAutoencoder
from tests.recipes.resume_checks import Interrupted, interrupt_at_call

TINY = "binary_tree_tiny"


@pytest.fixture(scope="module")
def recipe() -> ModuleType:
    return load_recipe(find_recipe("binary_tree"))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("tree") / "run"
    metrics = run_recipe("binary_tree", config=TINY, overrides=[f"output_dir={out}"])
    return out, metrics


def test_tiny_run_writes_every_output(tiny_run: tuple[Path, dict]) -> None:
    out, metrics = tiny_run
    assert (out / "config.yaml").is_file()
    for fig in ("tree", "leaves"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000, fig
    assert any((out / "tb").iterdir())
    assert (out / "parts" / "seed0_node_root.json").is_file()
    assert isinstance(seqae.load_pretrained(out / "parts" / "seed0_node_root"), BitAutoencoder)
    on_disk = json.loads((out / "metrics.json").read_text())
    for key in ("leaf_purity", "hungarian_acc_leaves", "kmeans_tree_leaf_purity"):
        assert on_disk[key] == pytest.approx(metrics[key]), key
    assert on_disk["node_sizes"] == metrics["node_sizes"]


def test_each_node_keeps_its_best_restart(tiny_run: tuple[Path, dict]) -> None:
    out, _ = tiny_run
    files = sorted((out / "parts").glob("seed*_node_*.json"))
    assert files
    for file in files:
        info = json.loads(file.read_text())
        losses = info["node_losses"]
        assert len(losses) == 2  # train.restarts_per_node in the tiny config
        assert info["chosen_restart"] == min(range(2), key=lambda r: losses[r])
        assert info["node_loss"] == losses[info["chosen_restart"]]


def test_tree_bookkeeping(tiny_run: tuple[Path, dict]) -> None:
    _, m = tiny_run
    sizes = m["node_sizes"]
    assert sizes["root"]["n_train"] == m["n_train"] and sizes["root"]["n_test"] == m["n_test"]
    for path, node in sizes.items():
        if node["leaf"]:
            assert node["stopped"]
            continue
        kids = [sizes[("" if path == "root" else path) + b] for b in "01"]
        assert sum(k["n_train"] for k in kids) == node["n_train"]
        assert sum(k["n_test"] for k in kids) == node["n_test"]
        assert node["n_train"] >= m["min_size"]  # only nodes at least min_size split
    leaves = [n for n in sizes.values() if n["leaf"]]
    assert len(leaves) == m["num_leaves_per_seed"][0] <= 2 ** m["depth"]
    assert all(n > 1 for n in m["num_leaves_per_seed"])  # the one-bit codes did split the data
    assert sum(n["n_test"] for n in leaves) == m["n_test"]
    for s in m["seeds"]:
        for tree in ("bit_tree", "kmeans_tree"):
            scores = s[tree]
            # one-to-one matching can never beat many-to-one (purity)
            assert scores["hungarian_acc_leaves"] <= scores["leaf_purity"] + 1e-12
            assert 0 < scores["leaf_purity"] <= 1
            top = scores["per_level"][str(m["depth"])]
            assert top["many_to_one_acc"] == pytest.approx(scores["leaf_purity"])
    # the 2-means tree on raw digit pixels (4 leaves) is far above chance (about 0.1)
    assert m["kmeans_tree_leaf_purity"] > 0.3
    assert len(m["leaf_purity_per_seed"]) == 2


def test_resume_reuses_trained_nodes(tiny_run: tuple[Path, dict]) -> None:
    out, first = tiny_run
    again = run_recipe("binary_tree", config=TINY, overrides=[f"output_dir={out}", "resume=true"])
    # every split node was trained (a node whose split came out degenerate was trained too)
    assert first["nodes_trained_now"] >= sum(m - 1 for m in first["num_leaves_per_seed"]) > 0
    assert again["nodes_trained_now"] == 0  # every node came from its part
    assert again["train_seconds"] == pytest.approx(first["train_seconds"])
    assert again["leaf_purity_per_seed"] == first["leaf_purity_per_seed"]
    assert again["node_sizes"] == first["node_sizes"]


def test_interrupted_then_resumed_run_matches_uninterrupted(
    tiny_run: tuple[Path, dict], recipe: ModuleType, tmp_path: Path, monkeypatch
) -> None:
    """Stop the run in the middle of the first tree (after its root), then resume=true: the
    uninterrupted run's trees and scores."""
    _, uninterrupted = tiny_run
    per_node = 2  # train.restarts_per_node in the tiny config
    resume_training = interrupt_at_call(monkeypatch, recipe, "train_node", call=per_node + 1)
    out = tmp_path / "run"
    with pytest.raises(Interrupted):
        run_recipe("binary_tree", config=TINY, overrides=[f"output_dir={out}"])
    assert [p.name for p in (out / "parts").glob("*.json")] == ["seed0_node_root.json"]
    resume_training()
    resumed = run_recipe("binary_tree", config=TINY, overrides=[f"output_dir={out}", "resume=true"])
    assert resumed["nodes_trained_now"] == uninterrupted["nodes_trained_now"] - 1
    differ = ("train_seconds", "nodes_trained_now")
    assert {k: v for k, v in resumed.items() if k not in differ} == {
        k: v for k, v in uninterrupted.items() if k not in differ
    }


def _blobs(n_per: int = 25) -> tuple[torch.Tensor, torch.Tensor]:
    """Four groups of images told apart by pixel 0 (> 0.5?) and pixel 1 (> 0.5?)."""
    y = torch.arange(4).repeat_interleave(n_per)
    x = torch.rand(len(y), 64) * 0.4
    x[:, 0] += 0.6 * (y // 2).float()
    x[:, 1] += 0.6 * (y % 2).float()
    return x, y


def test_build_tree_with_known_splits_and_min_size_guard(recipe: ModuleType) -> None:
    x, y = _blobs()
    calls = []

    def split(x_node: torch.Tensor, path: str):
        calls.append(path)
        pixel = len(path)  # root splits on pixel 0, depth-1 nodes on pixel 1
        return (lambda z: z[:, pixel] > 0.5), None

    root = recipe.build_tree(x, depth=2, min_size=2, train_split=split)
    assert calls == ["", "0", "1"]
    leaves = [n for n in recipe.walk(root) if not n.children]
    assert sorted(n.path for n in leaves) == ["00", "01", "10", "11"]
    assert all(n.reason == "max depth" for n in leaves)
    paths = recipe.route(root, x)
    assert [int(p, 2) for p in paths] == y.tolist()  # each group reaches its own leaf
    for leaf in leaves:  # routing the training images agrees with the stored membership
        assert sorted(i for i, p in enumerate(paths) if p == leaf.path) == leaf.train_idx.tolist()
    # with min_size above a child's size, the children stop splitting
    calls.clear()
    small = recipe.build_tree(x, depth=3, min_size=60, train_split=split)
    assert calls == [""]
    kids = small.children
    assert [len(k.train_idx) for k in kids] == [50, 50]
    assert all("fewer than min_size=60" in k.reason and not k.children for k in kids)


def test_degenerate_split_makes_a_leaf(recipe: ModuleType) -> None:
    x, _ = _blobs()
    root = recipe.build_tree(
        x, depth=3, min_size=2, train_split=lambda xn, p: ((lambda z: z[:, 0] > 99.0), None)
    )
    assert not root.children and root.reason.startswith("degenerate split")
    assert set(recipe.route(root, x)) == {""}


def test_scores_of_a_perfect_tree(recipe: ModuleType) -> None:
    x, y = _blobs()
    root = recipe.build_tree(
        x, depth=2, min_size=2, train_split=lambda xn, p: ((lambda z: z[:, len(p)] > 0.5), None)
    )
    data = {"x_train": x, "y_train": y, "x_test": x, "y_test": y}
    scores, _, _ = recipe.tree_scores(root, data, depth=2)
    assert scores["leaf_purity"] == 1.0 and scores["hungarian_acc_leaves"] == 1.0
    assert scores["leaf_label_transfer_acc"] == 1.0 and scores["num_leaves"] == 4
    # level 1 has two nodes for four classes: one-to-one gets half, many-to-one too
    assert scores["per_level"]["1"] == {"clusters": 2, "hungarian_acc": 0.5, "many_to_one_acc": 0.5}
    assert scores["node_sizes"]["root"]["n_train"] == 100
    assert scores["node_sizes"]["01"] == {
        "depth": 2,
        "n_train": 25,
        "n_test": 25,
        "leaf": True,
        "stopped": "max depth",
    }


def test_bit_autoencoder_learns_a_two_way_split(recipe: ModuleType) -> None:
    """Two groups of noisy copies of two images: one node must separate them."""
    from seqae.training import MetricLogger

    gen = torch.Generator().manual_seed(0)
    y = torch.arange(2).repeat_interleave(40)
    protos = torch.zeros(2, 64)
    protos[0, :32], protos[1, 32:] = 1.0, 1.0
    x = (protos[y] + 0.05 * torch.randn(80, 64, generator=gen)).clamp(0, 1)
    cfg = {
        "node": {"hidden": [16, 8], "style_dim": 0, "stochastic": False},
        "objective": {"reconstruction_weight": 1.0, "neighbors": 3, "mutual_info_weight": 1.0},
        "train": {"steps": 30, "batch_size": 40, "lr": 3e-3, "log_every": 1000, "compile": False},
    }
    model, _ = recipe.train_node(cfg, x, seed=0, logger=MetricLogger(".", enabled=False), tag="t")
    bits = model.split(x)
    assert bits[:40].all() != bits[40:].all()  # one group on each side
    assert bits[:40].all() or not bits[:40].any()
    assert bits[40:].all() or not bits[40:].any()
    assert model.prototypes().shape == (2, 64)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("tree.depth=0", r"tree.depth must be in 1..10"),
        ("tree.min_size=1", "tree.min_size must be at least 2"),
        ("objective.neighbors=50", "must be smaller than tree.min_size"),
        ("node.style_dim=64", r"style_dim must be in 0\.\.63"),
        ("tree.min_size=5000", "fewer than tree.min_size=5000"),
        ("objective.mutual_info_weight=0.0", None),  # fine alone: reconstruction splits
    ],
)
def test_impossible_setting_stops_before_training(
    tmp_path: Path, override: str, match: str | None
) -> None:
    if match is None:
        cfg_overrides = [override, "objective.reconstruction_weight=0.0", f"output_dir={tmp_path}"]
        with pytest.raises(ConfigError, match="both 0, so nothing"):
            run_recipe("binary_tree", config=TINY, overrides=cfg_overrides)
    else:
        with pytest.raises(ConfigError, match=match):
            run_recipe("binary_tree", config=TINY, overrides=[override, f"output_dir={tmp_path}"])
    assert not any(tmp_path.iterdir())  # the run folder was not claimed


def test_wrong_shape_or_empty_images_are_refused(recipe: ModuleType) -> None:
    good = {f"x_{s}": torch.rand(30, 64) for s in ("train", "val", "test")}
    with pytest.raises(ValueError, match=r"train images.*64"):
        recipe.check_data({**good, "x_train": torch.rand(30, 8, 8)}, min_size=4)
    with pytest.raises(ValueError, match="train images"):
        recipe.check_data({**good, "x_train": torch.rand(0, 64)}, min_size=4)
    recipe.check_data(good, min_size=4)


def test_bit_mutual_information_known_values(recipe: ModuleType) -> None:
    import math

    p = torch.tensor([1.0, 1.0, 0.0, 0.0])
    # balanced bit on which the pairs always agree: log 2
    assert recipe.bit_mutual_information(p, p).item() == pytest.approx(math.log(2), abs=1e-5)
    # a constant bit carries nothing
    ones = torch.ones(4)
    assert recipe.bit_mutual_information(ones, ones).item() == pytest.approx(0.0, abs=1e-5)
    # independent bits: the pair's joint is the product of its marginals
    q = torch.tensor([1.0, 0.0, 1.0, 0.0])
    assert recipe.bit_mutual_information(p, q).item() == pytest.approx(0.0, abs=1e-5)
    # undecided bits (p = 0.5 everywhere) carry nothing either
    half = torch.full((4,), 0.5)
    assert recipe.bit_mutual_information(half, half).item() == pytest.approx(0.0, abs=1e-5)


def test_untrained_node_starts_from_a_median_split(recipe: ModuleType) -> None:
    """The data-dependent init: before any step, the bit halves the node's images and the
    reconstruction is on average the node's mean image."""
    x, _ = _blobs()
    cfg = {
        "node": {"hidden": [16, 8], "style_dim": 0, "stochastic": False},
        "objective": {"reconstruction_weight": 1.0, "neighbors": 3, "mutual_info_weight": 1.0},
        "train": {"steps": 1, "batch_size": 100, "lr": 1e-12, "log_every": 1000, "compile": False},
    }
    from seqae.training import MetricLogger

    model, _ = recipe.train_node(cfg, x, seed=3, logger=MetricLogger(".", enabled=False), tag="t")
    assert model.split(x).float().mean().item() == pytest.approx(0.5, abs=0.02)
    with torch.no_grad():
        _, x_hat = model(x)
    torch.testing.assert_close(x_hat.mean(0), x.mean(0), atol=1e-4, rtol=0)
