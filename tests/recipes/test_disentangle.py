"""The disentangle recipe on its tiny config: outputs, losses, sweep summary, resume, bad settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import seqae
from seqae.cli import find_recipe, load_recipe, run_recipe
from seqae.config import ConfigError, load_config
from seqae.core import Autoencoder
from seqae.core.losses import kl_normal_std
from seqae.training import RunFolderError
from tests.recipes.resume_checks import Interrupted, interrupt_at_call

TINY = "disentangle_tiny"
RUN = "factorvae_gamma10_seed0"
recipe = load_recipe(find_recipe("disentangle"))


def tiny_cfg(out: Path, **changes) -> dict:
    cfg = load_config(find_recipe("disentangle").parent / "configs" / f"{TINY}.yaml")
    cfg["output_dir"] = str(out)
    for dotted, value in changes.items():
        node = cfg
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return cfg


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("disentangle") / "run"
    metrics = run_recipe("disentangle", config=TINY, overrides=[f"output_dir={out}"])
    return out, metrics


def test_tiny_run_writes_every_output(tiny_run: tuple[Path, dict]) -> None:
    out, metrics = tiny_run
    for name in ("config.yaml", "metrics.json", "summary.md", f"parts/{RUN}.json"):
        assert (out / name).is_file(), name
    for name in ("summary", f"traversal_{RUN}", f"reconstructions_{RUN}"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000, name
    assert any((out / "tb" / RUN).iterdir())
    model = Autoencoder.from_pretrained(out / "parts" / RUN)
    assert isinstance(seqae.load_pretrained(out / "parts" / RUN), Autoencoder)
    assert model.likelihood == "bernoulli"
    assert model.reconstruct(torch.rand(2, 1, 16, 16)).shape == (2, 1, 16, 16)

    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    run = on_disk["runs"][RUN]
    assert run["method"] == "factorvae" and run["weight"] == 10.0 and run["seed"] == 0
    for key in ("mig", "dci_disentanglement", "dci_completeness", "factor_vae_score"):
        assert 0.0 <= run[key] <= 1.0, key
    assert run["steps"] == 2 * 5  # 2 epochs of ceil(144 / 32) batches
    assert 0 < run["test_rec"] < 16 * 16 * np.log(2)  # better than a coin per pixel
    assert len(run["kl_per_dim"]) == 3 and set(run["mig_per_factor"]) == {
        "shape",
        "scale",
        "orientation",
        "pos_x",
        "pos_y",
    }
    assert on_disk["summary"]["factorvae gamma=10"]["mig"]["values"] == [run["mig"]]
    part = json.loads((out / "parts" / f"{RUN}.json").read_text())
    assert {k: part[k] for k in run} == run  # the part's record holds the run's metrics
    table = (out / "summary.md").read_text()
    assert "| factorvae gamma=10 |" in table and "FactorVAE score" in table


def test_resume_reuses_finished_runs(tiny_run: tuple[Path, dict], tmp_path: Path) -> None:
    out, metrics = tiny_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    weights = copy / "parts" / RUN / "model.safetensors"
    before = weights.stat().st_mtime_ns
    again = run_recipe("disentangle", config=TINY, overrides=[f"output_dir={copy}", "resume=true"])
    assert weights.stat().st_mtime_ns == before  # not retrained
    assert again["runs"][RUN] == metrics["runs"][RUN]
    # a model's result depends on its epochs: another train.epochs is another run
    with pytest.raises(RunFolderError, match=r"another config \(train\.epochs 2 -> 3\)"):
        run_recipe(
            "disentangle",
            config=TINY,
            overrides=[f"output_dir={copy}", "resume=true", "train.epochs=3"],
        )


def test_interrupted_then_resumed_sweep_matches_uninterrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A two-model sweep stopped while scoring its second model (trained and saved, its part
    not finished), then resume=true: the first model is reused, the second trained again
    from the start, and every number is the uninterrupted sweep's."""
    settings = "sweep.settings=[{method: betavae, weight: 4.0}, {method: tcvae, weight: 6.0}]"
    full = run_recipe(
        "disentangle", config=TINY, overrides=[f"output_dir={tmp_path / 'full'}", settings]
    )
    resume_scoring = interrupt_at_call(monkeypatch, recipe, "evaluate_one", call=2)
    out = tmp_path / "part"
    with pytest.raises(Interrupted):
        run_recipe("disentangle", config=TINY, overrides=[f"output_dir={out}", settings])
    assert [p.name for p in (out / "parts").glob("*.json")] == ["betavae_beta4_seed0.json"]
    assert (out / "parts" / "tcvae_beta6_seed0" / "model.safetensors").is_file()
    resume_scoring()
    resumed = run_recipe(
        "disentangle", config=TINY, overrides=[f"output_dir={out}", settings, "resume=true"]
    )
    timing = ("train_seconds", "metric_seconds")
    assert resumed["summary"] == full["summary"]
    assert resumed["runs"].keys() == full["runs"].keys()
    for name, run in full["runs"].items():
        mine = resumed["runs"][name]
        assert {k: v for k, v in mine.items() if k not in timing} == {
            k: v for k, v in run.items() if k not in timing
        }, name


def test_loss_terms_of_each_method() -> None:
    torch.manual_seed(0)
    model = recipe.build_model({"channels": [8, 16], "latent_dim": 3}, 16)
    disc = recipe.build_discriminator({"latent_dim": 3, "disc_hidden": 8, "disc_layers": 2})
    x = (torch.rand(32, 1, 16, 16) > 0.7).float()
    kw = {"dataset_size": 1000, "disc": disc}
    loss, terms, z = recipe.vae_terms(model, x, method="betavae", weight=4.0, **kw)
    assert set(terms) == {"rec", "kl"} and z.shape == (32, 3)
    assert loss.item() == pytest.approx((terms["rec"] + 4.0 * terms["kl"]).item(), rel=1e-6)
    # every regulariser reaches the encoder: the weight changes the encoder's gradient
    grads = []
    for weight in (1.0, 8.0):
        torch.manual_seed(1)
        model.zero_grad()
        recipe.vae_terms(model, x, method="betavae", weight=weight, **kw)[0].backward()
        grads.append(model.encoder.head[1].weight.grad.clone())  # the (mu, logvar) layer
    assert not torch.allclose(grads[0], grads[1])
    for name in ("tcvae", "factorvae"):
        _, terms, _ = recipe.vae_terms(model, x, method=name, weight=4.0, **kw)
        assert all(t.requires_grad for t in terms.values()), name

    loss, terms, _ = recipe.vae_terms(model, x, method="tcvae", weight=6.0, **kw)
    assert set(terms) == {"rec", "kl", "mi", "tc", "dim_kl"}
    expected = terms["rec"] + terms["mi"] + 6.0 * terms["tc"] + terms["dim_kl"]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)

    loss, terms, _ = recipe.vae_terms(model, x, method="factorvae", weight=20.0, **kw)
    assert set(terms) == {"rec", "kl", "tc"}
    expected = terms["rec"] + terms["kl"] + 20.0 * terms["tc"]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    # the KL term is the analytic KL of the posterior the encoder gives
    mu, logvar = model.bottleneck.posterior(model.encoder(x))
    assert terms["kl"].item() == pytest.approx(kl_normal_std(mu, logvar).item(), rel=1e-5)


def test_permute_dims_shuffles_each_dimension_separately() -> None:
    torch.manual_seed(0)
    z = torch.arange(200.0).view(50, 4)
    p = recipe.permute_dims(z)
    for d in range(4):  # each column keeps its values
        assert torch.equal(p[:, d].sort().values, z[:, d])
    # rows are no longer whole rows of z: the dimensions were shuffled independently
    assert (p[:, 1:] - p[:, :1] != torch.tensor([1.0, 2.0, 3.0])).any(dim=1).float().mean() > 0.8


def test_traversal_moves_one_latent_per_row() -> None:
    torch.manual_seed(0)
    model = recipe.build_model({"channels": [8, 16], "latent_dim": 3}, 16).eval()
    x = (torch.rand(40, 1, 16, 16) > 0.7).float()
    images, centre, spread = recipe.traversal(model, x, steps=5, k=2.0)
    assert images.shape == (3, 5, 1, 16, 16)
    mu = model.bottleneck.posterior(model.encoder(x))[0]
    # row 1, last column: x[0]'s code with latent 1 set to mean + 2 std
    code = mu[:1].clone()
    code[0, 1] = centre[1] + 2.0 * spread[1]
    torch.testing.assert_close(images[1, -1], model.mean(model.decode(code))[0])


def test_summary_gives_mean_and_std_over_seeds() -> None:
    settings = [{"method": "betavae", "weight": 4.0}, {"method": "tcvae", "weight": 6.0}]
    runs = {}
    for i, setting in enumerate(settings):
        for seed in (0, 1, 2):
            runs[recipe.run_name(setting, seed)] = {k: float(i + seed) for k in recipe.SUMMARY_KEYS}
    summary = recipe.summarise(settings, [0, 1, 2], runs)
    assert list(summary) == ["betavae beta=4", "tcvae beta=6"]
    assert summary["tcvae beta=6"]["mig"] == {"mean": 2.0, "std": 1.0, "values": [1.0, 2.0, 3.0]}
    table = recipe.summary_markdown(tiny_cfg(Path("unused")), summary, 60.0)
    assert "| tcvae beta=6 | 2.000 ± 1.000 |" in table


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model.latent_dim": 300}, r"latent_dim must be in 2..256 \(the image has 256 pixels\)"),
        ({"model.latent_dim": 1}, "model.latent_dim must be an integer >= 2"),
        ({"data.resolution": 18}, "divisible by 2"),
        ({"data.factor_sizes": [3, 1, 1, 1, 1]}, "varies fewer than 2 factors"),
        ({"data.factor_sizes": [3, 2, 2]}, "factor_sizes needs 5 entries"),
        ({"data.factor_sizes": [1, 1, 1, 2, 2]}, "expected at least one held-out image"),
        ({"sweep.settings": [{"method": "infovae", "weight": 1.0}]}, "unknown method 'infovae'"),
        ({"sweep.settings": [{"method": "tcvae", "weight": -1.0}]}, "weight must be a number >= 0"),
        ({"sweep.settings": [{"method": "tcvae"}]}, "keys method and weight"),
        ({"sweep.settings": []}, "at least one"),
        (
            {
                "sweep.settings": [
                    {"method": "tcvae", "weight": 1},
                    {"method": "tcvae", "weight": 1.0},
                ]
            },
            "twice",
        ),
        ({"sweep.seeds": [0, 0]}, "distinct integer seeds"),
        ({"train.batch_size": 1}, "batch_size must be an integer >= 2"),
        ({"eval.dci_model": "svm"}, "gbt, random_forest or lasso"),
    ],
)
def test_impossible_setting_stops_before_training(
    change: dict, message: str, tmp_path: Path
) -> None:
    cfg = tiny_cfg(tmp_path / "run", **change)
    with pytest.raises(ConfigError, match=message):
        recipe.main(cfg)
    assert not (tmp_path / "run").exists()


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.lrr"):
        run_recipe(
            "disentangle", config=TINY, overrides=["train.lrr=0.1", f"output_dir={tmp_path}"]
        )
