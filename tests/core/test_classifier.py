"""The code autoencoders used as classifiers: shapes, eval-mode codes, saving and loading in the
one saved-model format (through their own class, seqae.load_pretrained and the registry)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import seqae
from seqae import registry
from seqae.core import Autoencoder
from seqae.core.classifier import BitAutoencoder, OneHotClassifier
from seqae.core.saving import SavedModelError, save_model_files

MODELS = {
    "onehot": lambda: OneHotClassifier(in_dim=12, hidden=[8, 6], num_categories=3, style_dim=2),
    "bit": lambda: BitAutoencoder(in_dim=12, hidden=[8, 6], style_dim=1, stochastic=False),
}


def _codes(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.classify(x) if isinstance(model, OneHotClassifier) else model.split(x)


def test_onehot_classifier_shapes_and_eval_mode_codes() -> None:
    torch.manual_seed(0)
    model = MODELS["onehot"]()
    x = torch.rand(5, 12)
    q, code, x_hat = model(x)
    assert q.shape == (5, 3) and code.shape == (5,) and x_hat.shape == (5, 12)
    torch.testing.assert_close(q.sum(1), torch.ones(5))
    # classify is the argmax of q, in eval mode, and leaves the training flag as it was
    assert model.training
    assert torch.equal(model.classify(x), q.argmax(1))
    assert model.training
    assert model.prototypes().shape == model.prototypes(x).shape == (3, 12)


def test_bit_autoencoder_shapes_and_split() -> None:
    torch.manual_seed(0)
    model = MODELS["bit"]()
    x = torch.rand(7, 12)
    p, x_hat = model(x)
    assert p.shape == (7,) and x_hat.shape == (7, 12)
    assert torch.equal(model.split(x), p > 0.5)
    assert model.prototypes().shape == (2, 12)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_save_and_load_give_the_same_model(kind: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = MODELS[kind]()
    x = torch.rand(20, 12)
    model.save_pretrained(tmp_path / "m")
    document = json.loads((tmp_path / "m" / "config.json").read_text())
    assert document["model_type"] == model.model_type and document["config"] == model.config
    for loaded in (
        type(model).from_pretrained(tmp_path / "m"),
        seqae.load_pretrained(tmp_path / "m"),
    ):
        assert type(loaded) is type(model) and loaded.config == model.config
        for key, value in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key
        assert torch.equal(_codes(loaded, x), _codes(model, x))


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_registry_builds_each_from_a_spec(kind: str) -> None:
    model = MODELS[kind]()
    built = registry.build("model", {"name": model.model_type, **model.config})
    assert type(built) is type(model) and built.config == model.config


def test_loading_refuses_another_model_and_mismatched_weights(tmp_path: Path) -> None:
    OneHotClassifier(in_dim=12, hidden=[8], num_categories=3).save_pretrained(tmp_path / "onehot")
    with pytest.raises(SavedModelError, match="holds a 'onehot_classifier' model"):
        BitAutoencoder.from_pretrained(tmp_path / "onehot")
    with pytest.raises(SavedModelError, match="expected 'autoencoder'"):
        Autoencoder.from_pretrained(tmp_path / "onehot")
    # a config that does not fit the weights saved with it: each mis-shaped tensor is named
    model = OneHotClassifier(in_dim=12, hidden=[8], num_categories=3)
    config = {**model.config, "num_categories": 4}
    save_model_files(model, tmp_path / "wrong", model_type=model.model_type, config=config)
    with pytest.raises(SavedModelError, match="wrong shape"):
        OneHotClassifier.from_pretrained(tmp_path / "wrong")
    config = {**model.config, "colour": "red"}
    save_model_files(model, tmp_path / "unknown", model_type=model.model_type, config=config)
    with pytest.raises(SavedModelError, match="cannot build a onehot_classifier.*colour"):
        seqae.load_pretrained(tmp_path / "unknown")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: OneHotClassifier(hidden=[]), "hidden must list positive"),
        (lambda: OneHotClassifier(num_categories=1), "num_categories"),
        (lambda: BitAutoencoder(style_dim=-1), "style_dim must be an int >= 0"),
        (lambda: BitAutoencoder(in_dim=0), "in_dim must be a positive int"),
    ],
)
def test_impossible_sizes_are_refused(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()
