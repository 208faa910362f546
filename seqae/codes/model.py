"""Glue between a VQ autoencoder and code files: model hashes, codes of inputs, files of codes.

A code file names the model that wrote it by :func:`model_hash`, so decoding refuses codes made
by another model::

    info = encode_to_file(model, x_test, "codes.sqc", coding="adaptive")   # model: VQ AE
    x_hat = decode_from_file(model, "codes.sqc")      # refuses codes made by another model

A model knows the range of the data it was trained on when the recipe that trained it recorded
it (:func:`save_with_data_range` writes ``"data_range": [low, high]`` into the saved folder's
``config.json``); a model with a Bernoulli likelihood takes data in [0, 1] whether recorded or
not. :func:`check_input_range` refuses inputs clearly outside that range, and NaN or infinite
inputs always, before they are coded into plausible-looking garbage.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from seqae.codes.format import CodeFileInfo, Coding, ModelMismatchError, read_codes, write_codes
from seqae.core.saving import SavedModelError, save_model_files

__all__ = [
    "DATA_RANGE_KEY",
    "RANGE_TOLERANCE",
    "InputRangeError",
    "check_input_range",
    "expected_input_range",
    "save_with_data_range",
    "decode_from_file",
    "decode_model_codes",
    "encode_to_file",
    "model_codes",
    "model_hash",
]


def model_hash(model: nn.Module | Mapping[str, Tensor] | bytes) -> str:
    """32 hex digits (128 bits of SHA-256) naming a model by its config and weights.

    Two models share a hash only if they have the same ``config`` (when the module has one, as
    :class:`~seqae.core.Autoencoder` does) and bit-identical state tensors, so a code file can
    say which model made it. Device and ``requires_grad`` do not matter.

    Args:
        model: A module, a state dict, or raw bytes that identify a model.
    """
    digest = hashlib.sha256()
    if isinstance(model, bytes):
        digest.update(model)
        return digest.hexdigest()[:32]
    if isinstance(model, nn.Module):
        config = getattr(model, "config", None)
        if config is not None:
            digest.update(json.dumps(config, sort_keys=True, default=str).encode())
        state: Mapping[str, Tensor] = model.state_dict()
    else:
        state = model
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        digest.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:32]


def _vq_of(model: nn.Module) -> nn.Module:
    bottleneck = getattr(model, "bottleneck", None)
    if bottleneck is None or not callable(getattr(bottleneck, "lookup", None)):
        raise TypeError(
            f"{type(model).__name__} has no discrete bottleneck with lookup(indices) and "
            "codebook_size (use a VQ autoencoder)"
        )
    return bottleneck


@torch.no_grad()
def model_codes(model: nn.Module, x: Tensor, *, batch_size: int = 256) -> np.ndarray:
    """Codebook indices of ``x`` under a VQ autoencoder in eval mode: ``(N, *positions)`` int64.

    Args:
        model: An autoencoder whose bottleneck returns ``info["indices"]`` (e.g. a VQ-VAE).
        x: Inputs ``(N, ...)`` of the shape the encoder expects.
        batch_size: Inputs encoded at a time.
    """
    _vq_of(model)
    if x.shape[0] == 0:
        raise ValueError("model_codes: x holds no samples")
    was_training = model.training
    model.eval()
    try:
        device = next(iter(model.parameters())).device
        parts = [model.encode(xb.to(device)).info["indices"].cpu() for xb in x.split(batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(parts).numpy().astype(np.int64)


@torch.no_grad()
def decode_model_codes(model: nn.Module, codes: Any, *, batch_size: int = 256) -> Tensor:
    """Reconstructions (likelihood means) of codebook indices ``(N, *positions)``."""
    vq = _vq_of(model)
    indices = torch.as_tensor(np.asarray(codes), dtype=torch.long)
    was_training = model.training
    model.eval()
    try:
        device = next(iter(model.parameters())).device
        out = [
            model.mean(model.decode(vq.lookup(c.to(device)))).cpu()
            for c in indices.split(batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(out)


def encode_to_file(
    model: nn.Module,
    x: Tensor,
    path: str | Path,
    *,
    coding: Coding = "adaptive",
    batch_size: int = 256,
) -> CodeFileInfo:
    """Encode ``x`` with a VQ autoencoder and write its codes to ``path`` (atomically).

    Args:
        model: A VQ autoencoder (bottleneck with ``codebook_size`` and ``lookup``).
        x: Inputs ``(N, ...)``.
        path: Output code file.
        coding: See :func:`encode_codes`.
        batch_size: Inputs encoded at a time.
    """
    vq = _vq_of(model)
    codes = model_codes(model, x, batch_size=batch_size)
    return write_codes(
        path,
        codes,
        codebook_size=int(vq.codebook_size),
        model_hash=model_hash(model),
        coding=coding,
    )


def decode_from_file(model: nn.Module, path: str | Path, *, batch_size: int = 256) -> Tensor:
    """Read ``path`` and decode its codes with ``model``, which must be the model that wrote it.

    Raises:
        ModelMismatchError: The file's model hash is not ``model``'s.
        CodeFileError: The file is not a readable code file.
    """
    vq = _vq_of(model)
    read = read_codes(path, expected_model_hash=model_hash(model))
    if read.info.codebook_size != vq.codebook_size:  # unreachable unless hashes collide
        raise ModelMismatchError(
            f"{path}: codebook size {read.info.codebook_size} != model's {vq.codebook_size}"
        )
    return decode_model_codes(model, read.codes, batch_size=batch_size)


# ---------------------------------------------------------------------------------------------
# the range of inputs a model was trained on
# ---------------------------------------------------------------------------------------------
DATA_RANGE_KEY = "data_range"
"""The ``config.json`` entry that records the training data's range, ``[low, high]``."""

RANGE_TOLERANCE = 0.1
"""Inputs may pass the recorded range by this fraction of its width (rounding, resampling
overshoot) before :func:`check_input_range` refuses them."""


class InputRangeError(ValueError):
    """Inputs hold NaN or infinite values, or values clearly outside the model's range."""


def _checked_range(value: Any) -> tuple[float, float]:
    """``[low, high]`` as two finite floats with ``low < high``, else ``ValueError``."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"a data range is [low, high], two numbers; got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"a data range needs finite low < high; got [{low}, {high}]")
    return low, high


def save_with_data_range(
    model: nn.Module, directory: str | Path, *, data_range: tuple[float, float]
) -> Path:
    """Save an autoencoder as ``save_pretrained`` does, recording the range of its training data.

    ``seqae codes encode`` reads the range back (:func:`expected_input_range`) and refuses
    inputs clearly outside it.

    Args:
        model: An :class:`~seqae.core.Autoencoder` (anything with ``model_type`` and ``config``).
        directory: The saved-model folder.
        data_range: ``(low, high)``, the range of values of the data the model was trained on
            (the data's domain, e.g. ``(0.0, 1.0)`` for images scaled to [0, 1]).
    """
    low, high = _checked_range(data_range)
    return save_model_files(
        model,
        directory,
        model_type=model.model_type,
        config=model.config,
        extras={DATA_RANGE_KEY: [low, high]},
    )


def expected_input_range(
    model: nn.Module, extras: Mapping[str, Any] | None = None
) -> tuple[float, float] | None:
    """The range of inputs ``model`` was trained on, or ``None`` when it cannot be known.

    Args:
        model: The loaded model.
        extras: The saved folder's ``config.json`` extras (``read_model_config(...).extras``):
            a recorded ``"data_range"`` wins; without one, a Bernoulli likelihood means data in
            [0, 1].

    Raises:
        SavedModelError: The recorded ``"data_range"`` is not ``[low, high]``.
    """
    recorded = (extras or {}).get(DATA_RANGE_KEY)
    if recorded is not None:
        try:
            return _checked_range(recorded)
        except ValueError as exc:
            raise SavedModelError(
                f"the saved model's {DATA_RANGE_KEY!r} is damaged: {exc}"
            ) from None
    if getattr(model, "likelihood", None) == "bernoulli":
        return (0.0, 1.0)
    return None


def check_input_range(
    x: Any, expected: tuple[float, float] | None, *, source: str = "the input"
) -> None:
    """Refuse inputs a model cannot have been meant for.

    Args:
        x: The inputs (array or tensor).
        expected: ``(low, high)`` from :func:`expected_input_range`; values beyond it by more
            than :data:`RANGE_TOLERANCE` of its width are refused. ``None``: only the finiteness
            check.
        source: How to name the inputs in the message (the input file).

    Raises:
        InputRangeError: ``x`` is not numeric, holds NaN or infinite values, or has values
            clearly outside ``expected``; the message names the observed and expected ranges.
    """
    array = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if array.dtype.kind not in "biuf":  # bool, signed and unsigned integers, floats
        raise InputRangeError(
            f"{source} holds values of dtype {array.dtype}; expected real numbers"
        )
    if array.size == 0:
        return
    wanted = f"[{expected[0]:.4g}, {expected[1]:.4g}]" if expected is not None else None
    finite = np.isfinite(array)
    if not finite.all():
        raise InputRangeError(
            f"{source} holds {int((~finite).sum())} NaN or infinite values (of {array.size}); "
            f"expected finite numbers{' in ' + wanted if wanted else ''}"
        )
    if expected is None:
        return
    low, high = float(array.min()), float(array.max())
    margin = RANGE_TOLERANCE * (expected[1] - expected[0])
    if low < expected[0] - margin or high > expected[1] + margin:
        raise InputRangeError(
            f"{source} holds values in [{low:.4g}, {high:.4g}], outside {wanted}, the range the "
            "model was trained on; rescale the input to that range"
        )
