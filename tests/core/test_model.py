"""The Autoencoder: forward for every bottleneck, tutorial uses, likelihood, save/load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from seqae.core.base import NonFiniteInputError
from seqae.core.identity import IdentityBottleneck
from seqae.core.model import Autoencoder, slerp
from seqae.core.nets import MLP

LATENT = 4


def _config(bottleneck: str, **options: object) -> dict:
    code = {
        "identity": LATENT,
        "gaussian": LATENT,
        "vq": LATENT,
        "binary": LATENT,
        "onehot": LATENT,
    }[bottleneck]
    specs = {
        "identity": {"name": "identity"},
        "gaussian": {"name": "gaussian", "in_dim": 16, "latent_dim": LATENT},
        "vq": {"name": "vq", "dim": 16, "codebook_size": 8},
        "binary": {"name": "binary", "in_dim": 16, "code_dim": LATENT},
        "onehot": {"name": "onehot", "in_dim": 16, "num_categories": LATENT},
    }
    enc_out = 16 if bottleneck != "identity" else LATENT
    dec_in = 16 if bottleneck == "vq" else code
    return {
        "encoder": {"name": "mlp", "in_dim": 12, "hidden": [20], "out_dim": enc_out},
        "bottleneck": specs[bottleneck],
        "decoder": {"name": "mlp", "in_dim": dec_in, "hidden": [20], "out_dim": 12},
        **options,
    }


BOTTLENECKS = ["identity", "gaussian", "vq", "binary", "onehot"]


@pytest.mark.parametrize("bottleneck", BOTTLENECKS)
def test_forward_and_backward_for_every_bottleneck(bottleneck: str) -> None:
    torch.manual_seed(0)
    model = Autoencoder.from_config(_config(bottleneck))
    x = torch.rand(6, 12)
    out = model(x)
    assert out.x_hat.shape == x.shape
    loss = model.reconstruction_loss(out.x_hat, x) + out.loss
    loss.backward()
    first = model.encoder.layers[0][0].weight.grad
    assert first is not None and first.abs().sum() > 0, "no gradient reached the encoder"


@pytest.mark.parametrize("bottleneck", BOTTLENECKS)
def test_save_load_round_trip(bottleneck: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Autoencoder.from_config(
        _config(bottleneck, likelihood="gaussian", learn_sigma=True, sigma_shape=[12])
    )
    x = torch.rand(5, 12)
    model.train()
    model(x)  # lets data-dependent state (VQ k-means / EMA) change before saving
    model.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"config.json", "model.safetensors"}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["config"]["bottleneck"]["name"] == bottleneck
    again = Autoencoder.from_pretrained(tmp_path)
    model.eval()
    again.eval()
    assert torch.equal(model.reconstruct(x), again.reconstruct(x))
    for (k, a), (k2, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k


def test_weights_from_another_model_are_refused(tmp_path: Path) -> None:
    Autoencoder.from_config(_config("gaussian")).save_pretrained(tmp_path / "a")
    Autoencoder.from_config(_config("binary")).save_pretrained(tmp_path / "b")
    # config of a, weights of b
    (tmp_path / "a" / "model.safetensors").write_bytes(
        (tmp_path / "b" / "model.safetensors").read_bytes()
    )
    with pytest.raises(ValueError, match=r"config.json does not match the weights saved with it"):
        Autoencoder.from_pretrained(tmp_path / "a")


def test_corrupt_and_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        Autoencoder.from_pretrained(tmp_path / "nowhere")
    Autoencoder.from_config(_config("gaussian")).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(ValueError, match="model.safetensors is not a readable safetensors file"):
        Autoencoder.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        Autoencoder.from_pretrained(tmp_path)


def test_unknown_config_key_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown autoencoder config keys \['sigmaa'\]"):
        Autoencoder.from_config(_config("gaussian", sigmaa=1.0))


def test_hand_built_model_cannot_be_described(tmp_path: Path) -> None:
    model = Autoencoder(
        encoder=MLP(in_dim=4, out_dim=2),
        bottleneck=IdentityBottleneck(),
        decoder=MLP(in_dim=2, out_dim=4),
    )
    assert model(torch.rand(3, 4)).x_hat.shape == (3, 4)
    with pytest.raises(TypeError, match="was not built from a registry spec"):
        model.save_pretrained(tmp_path)


@pytest.mark.parametrize("bottleneck", ["gaussian", "vq", "binary", "onehot"])
def test_sample_from_prior(bottleneck: str) -> None:
    model = Autoencoder.from_config(_config(bottleneck))
    assert model.sample(7).shape == (7, 12)
    assert model.training, "sample() must restore the training mode"


def test_sample_without_prior_is_refused() -> None:
    with pytest.raises(TypeError, match="no prior"):
        Autoencoder.from_config(_config("identity")).sample(3)


@pytest.mark.parametrize("method", ["linear", "slerp"])
def test_interpolate_endpoints_and_midpoint(method: str) -> None:
    torch.manual_seed(0)
    model = Autoencoder.from_config(_config("gaussian")).eval()
    a, b = torch.rand(2, 12), torch.rand(2, 12)
    path = model.interpolate(a, b, steps=5, method=method)
    assert path.shape == (5, 2, 12)
    torch.testing.assert_close(path[0], model.reconstruct(a))
    torch.testing.assert_close(path[-1], model.reconstruct(b))
    if method == "linear":
        za, zb = model.encode(a).z, model.encode(b).z
        torch.testing.assert_close(path[2], model.decode((za + zb) / 2))


def test_slerp_keeps_norm_between_equal_norm_vectors() -> None:
    a = torch.nn.functional.normalize(torch.randn(3, 6), dim=1) * 2
    b = torch.nn.functional.normalize(torch.randn(3, 6), dim=1) * 2
    path = slerp(a, b, torch.linspace(0, 1, 7))
    torch.testing.assert_close(path.flatten(2).norm(dim=2), torch.full((7, 3), 2.0))
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b)
    same = slerp(a, a, torch.linspace(0, 1, 3))  # parallel: falls back to linear, no NaN
    assert torch.isfinite(same).all()


def test_denoising_corruption_only_in_training() -> None:
    torch.manual_seed(0)
    model = Autoencoder.from_config(_config("identity", noise=0.5, noise_kind="masking"))
    x = torch.ones(200, 12)
    zeroed = (model.corrupt(x) == 0).float().mean().item()
    assert 0.4 < zeroed < 0.6
    model.eval()
    assert torch.equal(model(x).x_hat, model(x).x_hat)


def test_gaussian_log_likelihood_matches_torch_distributions() -> None:
    model = Autoencoder.from_config(_config("gaussian", sigma=0.3))
    x_hat, x = torch.randn(4, 12), torch.randn(4, 12)
    expected = torch.distributions.Normal(x_hat, 0.3).log_prob(x).sum(1)
    torch.testing.assert_close(model.log_likelihood(x_hat, x), expected)
    # m samples per input: x is repeated sample-major
    x_hat2 = torch.randn(8, 12)
    expected2 = torch.distributions.Normal(x_hat2, 0.3).log_prob(x.repeat(2, 1)).sum(1)
    torch.testing.assert_close(model.log_likelihood(x_hat2, x), expected2)


def test_bernoulli_log_likelihood_and_mean() -> None:
    model = Autoencoder.from_config(_config("gaussian", likelihood="bernoulli"))
    logits, x = torch.randn(4, 12), torch.rand(4, 12).round()
    expected = torch.distributions.Bernoulli(logits=logits).log_prob(x).sum(1)
    torch.testing.assert_close(model.log_likelihood(logits, x), expected)
    torch.testing.assert_close(model.mean(logits), torch.sigmoid(logits))


def test_learned_sigma_is_trained() -> None:
    model = Autoencoder.from_config(_config("gaussian", learn_sigma=True))
    x = torch.rand(4, 12)
    out = model(x)
    model.reconstruction_loss(out.x_hat, x).backward()
    assert model.log_sigma.grad is not None and model.log_sigma.grad.abs() > 0
    assert math.isclose(model.log_sigma.item(), 0.0)


def test_nan_input_is_refused() -> None:
    model = Autoencoder.from_config(_config("gaussian"))
    x = torch.rand(3, 12)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        model(x)


@pytest.mark.parametrize("bottleneck", ["identity", "gaussian", "vq", "binary", "onehot"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_non_finite_input_data_are_named(bottleneck: str, training: bool) -> None:
    model = Autoencoder.from_config(_config(bottleneck)).train(training)
    for bad in (float("nan"), float("inf"), -float("inf")):
        x = torch.rand(3, 12)
        x[2, 5] = bad
        x[0, 0] = bad
        with pytest.raises(NonFiniteInputError, match="input holds 2 NaN or infinite values"):
            model(x)
        with pytest.raises(ValueError, match="input holds 2 NaN or infinite values"):
            model.encode(x)
    with pytest.raises(TypeError, match="torch.Tensor"):
        model.encode([[0.0] * 12])


def test_non_finite_features_from_finite_data_blame_the_bottleneck_input() -> None:
    # the data are clean but the encoder has diverged: the bottleneck's own error comes through
    model = Autoencoder.from_config(_config("gaussian"))
    with torch.no_grad():
        model.encoder.layers[0][0].weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteInputError, match="GaussianBottleneck: input contains"):
        model(torch.rand(3, 12))


def test_reconstruction_loss_is_the_mean_negative_log_likelihood() -> None:
    for options in ({}, {"likelihood": "bernoulli"}, {"learn_sigma": True, "sigma": 0.5}):
        model = Autoencoder.from_config(_config("gaussian", **options))
        x = torch.rand(5, 12)
        x_hat = torch.rand(5, 12)
        torch.testing.assert_close(
            model.reconstruction_loss(x_hat, x), -model.log_likelihood(x_hat, x).mean()
        )


def test_stacked_autoencoder_mirrors_sizes_and_round_trips(tmp_path: Path) -> None:
    model = Autoencoder.stacked([12, 10, 6, 3], noise=0.1)
    enc = [block[0].out_features for block in model.encoder.layers]
    dec = [block[0].out_features for block in model.decoder.layers]
    assert enc == [10, 6, 3] and dec == [6, 10, 12]
    model.save_pretrained(tmp_path)
    again = Autoencoder.from_pretrained(tmp_path).eval()
    x = torch.rand(4, 12)
    assert torch.equal(model.eval().reconstruct(x), again.reconstruct(x))
    vae = Autoencoder.stacked(
        [12, 8], bottleneck={"name": "gaussian", "in_dim": 8, "latent_dim": 2}
    )
    assert vae.sample(5).shape == (5, 12)
    with pytest.raises(ValueError, match="at least"):
        Autoencoder.stacked([12])


def test_stacked_builds_its_bottleneck_once_and_refuses_unknown_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from seqae.core import model as model_module

    built: list[str] = []
    real = model_module.registry_build

    def counting(kind: str, spec: dict) -> object:
        built.append(kind)
        return real(kind, spec)

    monkeypatch.setattr(model_module, "registry_build", counting)
    Autoencoder.stacked([12, 8], bottleneck={"name": "gaussian", "in_dim": 8, "latent_dim": 2})
    assert sorted(built) == ["bottleneck", "decoder", "encoder"]
    with pytest.raises(ValueError, match=r"unknown autoencoder config keys \['nois'\]"):
        Autoencoder.stacked([12, 8], nois=0.1)


def test_a_flipped_bit_in_saved_weights_is_refused(tmp_path) -> None:
    import random

    from seqae.core.saving import SavedModelError

    model = Autoencoder.from_config(
        {
            "encoder": {"name": "mlp", "in_dim": 8, "hidden": [16], "out_dim": 4},
            "bottleneck": {"name": "gaussian", "in_dim": 4, "latent_dim": 2},
            "decoder": {"name": "mlp", "in_dim": 2, "hidden": [16], "out_dim": 8},
        }
    )
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    rng = random.Random(0)
    detected = 0
    for _ in range(40):
        damaged = bytearray(data)
        damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        weights.write_bytes(bytes(damaged))
        try:
            again = Autoencoder.from_pretrained(tmp_path)
        except SavedModelError:
            detected += 1
            continue
        for a, b in zip(again.state_dict().values(), model.state_dict().values(), strict=True):
            assert torch.equal(a, b)  # a flip that changed no value (header padding) is harmless
    assert detected > 30
