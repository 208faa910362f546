"""The demo finds the trained models under a runs folder by kind, and loads each folder once."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from seqae.demo.cache import ModelCache
from seqae.demo.discovery import KINDS, find_models, model_folders
from seqae.extras import missing_modules

EXPECTED = {
    "vae": ["vae_digits"],
    "vqvae": ["vqvae"],
    "tree": ["tree_ae"],
    "vc": [] if missing_modules("audio") else ["vc"],
    "vocoder": [] if missing_modules("audio") else ["vocoder"],
    "summarizer": []
    if missing_modules("text")
    else ["summary_ae", "summary_ae_nodisc", "summary_ppo"],
}


def test_every_kind_is_found_by_name_and_nothing_else(tiny_runs: Path) -> None:
    found = find_models(tiny_runs)
    assert set(found) == set(KINDS)
    assert {kind: [m.name for m in models] for kind, models in found.items()} == EXPECTED
    vae = found["vae"][0]
    assert vae.path == tiny_runs.resolve() / "vae_digits" / "model"
    assert vae.model_type == "autoencoder"
    assert vae.config["bottleneck"]["latent_dim"] == 3
    assert vae.run_setting("data.test_fraction") == 0.2
    assert vae.run_setting("data.missing", "default") == "default"


def test_a_run_names_its_corpus_relative_to_where_it_ran(tiny_runs: Path) -> None:
    (tree,) = find_models(tiny_runs)["tree"]
    assert tree.run_setting("data.corpus") == "runs/tree_corpus"
    assert tree.run_path("data.corpus", holding="test.txt") == tiny_runs.resolve() / "tree_corpus"
    assert tree.run_path("data.corpus", holding="absent.txt") is None
    assert tree.run_path("data.nothing") is None


def test_damaged_partial_and_companionless_folders_are_left_out(
    tiny_runs: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(tiny_runs / "vae_digits", runs / "good")
    shutil.copytree(tiny_runs / "vae_digits", runs / "damaged")
    (runs / "damaged" / "model" / "config.json").write_text("{not json")
    shutil.copytree(tiny_runs / "vae_digits", runs / "half_written")
    (runs / "half_written" / "model" / "model.safetensors").unlink()
    shutil.copytree(tiny_runs / "tree_ae", runs / "no_vocab")
    (runs / "no_vocab" / "model" / "vocab.json").unlink()
    # by-products and corpora are not searched, however deep the models in them
    shutil.copytree(tiny_runs / "vae_digits" / "model", runs / "good" / "checkpoints" / "model")
    shutil.copytree(tiny_runs / "vae_digits" / "model", runs / "corpus" / "wav" / "model")
    (runs / "corpus" / "corpus.json").write_text("{}")
    shutil.copytree(tiny_runs / "vae_digits" / "model", runs / "corpus" / "model")
    found = find_models(runs)
    assert [m.name for m in found["vae"]] == ["good"]
    assert found["tree"] == []
    assert list(model_folders(runs)) == sorted(
        runs / name / "model" for name in ("damaged", "good", "no_vocab")
    )


def test_a_runs_folder_may_gather_runs_through_links(tiny_runs: Path, tmp_path: Path) -> None:
    gathered = tmp_path / "gathered"
    gathered.mkdir()
    (gathered / "my_vae").symlink_to(tiny_runs / "vae_digits", target_is_directory=True)
    (gathered / "loop").symlink_to(gathered, target_is_directory=True)  # a cycle: once
    (gathered / "same").symlink_to(tiny_runs / "vae_digits", target_is_directory=True)
    found = find_models(gathered)
    assert [m.name for m in found["vae"]] == ["my_vae"]  # each folder once


def test_an_empty_runs_folder_has_every_kind_empty(tmp_path: Path) -> None:
    assert find_models(tmp_path) == {kind: [] for kind in KINDS}


def test_the_cache_loads_each_key_once_even_when_sessions_ask_at_once() -> None:
    cache = ModelCache()
    calls: list[str] = []

    def slow_load() -> object:
        calls.append("load")
        time.sleep(0.05)
        return object()

    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("model", slow_load)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["load"] and len({id(r) for r in results}) == 1
    assert cache.get("model", slow_load) is results[0] and calls == ["load"]
    assert cache.loads["model"] == 1 and "model" in cache and len(cache) == 1


def test_a_failed_load_is_not_remembered() -> None:
    cache = ModelCache()

    def broken() -> object:
        raise ValueError("model folder is damaged")

    with pytest.raises(ValueError, match="damaged"):
        cache.get("model", broken)
    assert "model" not in cache
    assert cache.get("model", lambda: 42) == 42
