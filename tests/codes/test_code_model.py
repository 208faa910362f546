"""seqae.codes.model: model hashes, a VQ model's codes to and from files, input ranges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seqae.codes import (
    CODINGS,
    DATA_RANGE_KEY,
    RANGE_TOLERANCE,
    InputRangeError,
    ModelMismatchError,
    check_input_range,
    decode_from_file,
    encode_to_file,
    expected_input_range,
    model_codes,
    model_hash,
    read_codes,
    save_with_data_range,
)
from seqae.core import Autoencoder
from seqae.core.saving import SavedModelError, read_model_config
from tests.codes.vq_models import vq_model


def test_model_hash_names_config_and_weights(tmp_path: Path) -> None:
    a = vq_model(0)
    assert model_hash(a) == model_hash(vq_model(0))
    assert len(model_hash(a)) == 32
    assert model_hash(a) != model_hash(vq_model(1))  # other weights
    assert model_hash(a) != model_hash(vq_model(0, k=9))  # other config
    a.save_pretrained(tmp_path / "m")
    assert model_hash(Autoencoder.from_pretrained(tmp_path / "m")) == model_hash(a)
    with torch.no_grad():
        a.bottleneck.embed[0, 0] += 1e-6
    assert model_hash(a) != model_hash(vq_model(0))
    assert model_hash(b"x") != model_hash(b"y")


@pytest.mark.parametrize("coding", CODINGS)
def test_model_round_trip_through_a_file(tmp_path: Path, coding: str) -> None:
    model = vq_model(0)
    x = torch.rand(50, 12)
    path = tmp_path / "codes.sqc"
    info = encode_to_file(model, x, path, coding=coding, batch_size=16)
    assert info.shape == (3,) and info.num_samples == 50 and info.codebook_size == 8
    assert info.model_hash == model_hash(model)
    np.testing.assert_array_equal(read_codes(path).codes, model_codes(model, x))
    assert torch.equal(decode_from_file(model, path), model.reconstruct(x))
    torch.testing.assert_close(decode_from_file(model, path, batch_size=7), model.reconstruct(x))
    with pytest.raises(ModelMismatchError, match="different model"):
        decode_from_file(vq_model(1), path)


def test_model_helpers_refuse_models_without_codes() -> None:
    plain = Autoencoder.stacked([12, 4])
    with pytest.raises(TypeError, match="discrete bottleneck"):
        model_codes(plain, torch.rand(3, 12))
    with pytest.raises(ValueError, match="no samples"):
        model_codes(vq_model(), torch.rand(0, 12))


# ---------------------------------------------------------------------------------------------
# the range of inputs a model was trained on
# ---------------------------------------------------------------------------------------------
def test_expected_input_range_is_recorded_bernoulli_or_unknown(tmp_path: Path) -> None:
    gaussian = vq_model(0)
    assert expected_input_range(gaussian) is None  # nothing says what it was trained on
    assert expected_input_range(vq_model(0, likelihood="bernoulli")) == (0.0, 1.0)
    save_with_data_range(gaussian, tmp_path / "m", data_range=(-1.0, 2.5))
    saved = read_model_config(tmp_path / "m", expected=("autoencoder",))
    assert saved.extras == {DATA_RANGE_KEY: [-1.0, 2.5]}
    loaded = Autoencoder.from_pretrained(tmp_path / "m")
    assert model_hash(loaded) == model_hash(gaussian)  # the same model, only the record added
    assert expected_input_range(loaded, saved.extras) == (-1.0, 2.5)
    # a recorded range wins over the Bernoulli default
    recorded = {DATA_RANGE_KEY: [0, 255]}
    assert expected_input_range(vq_model(0, likelihood="bernoulli"), recorded) == (0.0, 255.0)
    with pytest.raises(SavedModelError, match="'data_range' is damaged"):
        expected_input_range(gaussian, {DATA_RANGE_KEY: [1, 0]})
    with pytest.raises(SavedModelError, match="two numbers"):
        expected_input_range(gaussian, {DATA_RANGE_KEY: "0-1"})
    with pytest.raises(ValueError, match="low < high"):
        save_with_data_range(gaussian, tmp_path / "bad", data_range=(1.0, 1.0))
    assert not (tmp_path / "bad").exists()


def test_check_input_range_accepts_the_range_and_a_small_overshoot() -> None:
    x = np.linspace(0.0, 1.0, 24).reshape(2, 12)
    check_input_range(x, (0.0, 1.0))
    check_input_range(torch.from_numpy(x), (0.0, 1.0))
    overshoot = RANGE_TOLERANCE * 0.9
    check_input_range(x * (1 + 2 * overshoot) - overshoot, (0.0, 1.0))
    check_input_range(x * 1e6, None)  # unknown range: only finiteness is checked
    check_input_range(np.zeros((0, 12)), (0.0, 1.0))


@pytest.mark.parametrize(
    ("x", "observed"),
    [
        (np.arange(24).reshape(2, 12) % 17, r"\[0, 16\]"),  # raw 0..16 digits
        (np.linspace(0, 1, 24).reshape(2, 12) * 1e6, r"\[0, 1e\+06\]"),
        (np.linspace(-0.5, 1, 24).reshape(2, 12), r"\[-0\.5, 1\]"),
        (np.linspace(0, 1 + 2 * RANGE_TOLERANCE, 24).reshape(2, 12), r"\[0, 1\.2\]"),
    ],
)
def test_check_input_range_refuses_values_clearly_outside(x: np.ndarray, observed: str) -> None:
    with pytest.raises(
        InputRangeError,
        match=rf"x\.npy holds values in {observed}, outside \[0, 1\], the range the model was trained",
    ):
        check_input_range(x, (0.0, 1.0), source="x.npy")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("expected", [None, (0.0, 1.0)])
def test_check_input_range_refuses_nan_and_inf(
    bad: float, expected: tuple[float, float] | None
) -> None:
    x = np.full((2, 12), 0.5, dtype=np.float32)
    x[1, 3] = bad
    with pytest.raises(InputRangeError, match=r"x\.npy holds 1 NaN or infinite values \(of 24\)"):
        check_input_range(x, expected, source="x.npy")
    with pytest.raises(InputRangeError, match="NaN or infinite"):
        check_input_range(torch.from_numpy(x), expected)


def test_check_input_range_refuses_non_numbers() -> None:
    with pytest.raises(InputRangeError, match="dtype <U1; expected real numbers"):
        check_input_range(np.array([["a", "b"]]), None)
    with pytest.raises(InputRangeError, match="expected real numbers"):
        check_input_range(np.ones((2, 2), dtype=np.complex64), None)
