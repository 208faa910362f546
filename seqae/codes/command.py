"""The ``seqae codes encode|decode|info`` command (``add_parser`` is its registry entry).

Encode an array of inputs with a saved VQ autoencoder, decode a code file, or describe one::

    seqae codes encode --model runs/vqvae/model --input x.npy --out codes.sqc
    seqae codes decode --model runs/vqvae/model codes.sqc --out x_hat.npy
    seqae codes info codes.sqc

A user's mistake (a missing or unreadable input, an output that would overwrite an input, a
model folder of another kind, inputs outside the range the model was trained on, a damaged code
file) raises :class:`~seqae.errors.UsageError` or another of :func:`seqae.errors.user_errors`,
which ``seqae`` reports as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seqae.codes.format import CODINGS, CodeFileError, read_header
from seqae.codes.model import (
    InputRangeError,
    check_input_range,
    decode_from_file,
    encode_to_file,
    expected_input_range,
)
from seqae.core.saving import CONFIG_NAME, WEIGHTS_NAME, SavedModel, read_model_config
from seqae.errors import UsageError
from seqae.files import refuse_overwriting_inputs

__all__ = ["add_parser"]


def _load_array(path: str, key: str | None) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"input {p} not found; expected a .npy or .npz array of inputs (N, ...)")
    try:
        if p.suffix == ".npz":
            with np.load(p) as archive:
                names = list(archive.files)
                if key is None:
                    if len(names) != 1:
                        raise UsageError(f"{p} holds arrays {names}; choose one with --key")
                    key = names[0]
                if key not in names:
                    raise UsageError(f"{p} has no array {key!r}; it holds {names}")
                return np.asarray(archive[key])
        return np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        kind = ".npz archive" if p.suffix == ".npz" else ".npy array"
        raise UsageError(f"cannot read {p} as a {kind} ({exc})") from None


def _model_files(directory: str) -> list[Path]:
    """The files a command reads from a saved-model folder (its outputs must not be these)."""
    return [Path(directory) / CONFIG_NAME, Path(directory) / WEIGHTS_NAME]


def _load_model(directory: str) -> tuple[nn.Module, SavedModel]:
    """The autoencoder saved in ``directory`` and its parsed ``config.json``; another kind of
    saved model (a voice-conversion model, say) is refused with :class:`SavedModelError`."""
    from seqae.core import Autoencoder

    saved = read_model_config(directory, expected=(Autoencoder.model_type,))
    return Autoencoder.from_pretrained(directory), saved


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise UsageError(f"--batch-size must be a positive integer, got {batch_size}")


def _cmd_encode(args: argparse.Namespace) -> int:
    refuse_overwriting_inputs(args.out, [args.input, *_model_files(args.model)], what="--out")
    _check_batch_size(args.batch_size)
    model, saved = _load_model(args.model)
    array = _load_array(args.input, args.key)
    try:
        check_input_range(array, expected_input_range(model, saved.extras), source=args.input)
    except InputRangeError as exc:
        raise UsageError(str(exc)) from None
    x = torch.as_tensor(array, dtype=torch.float32)
    try:
        info = encode_to_file(model, x, args.out, coding=args.coding, batch_size=args.batch_size)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"cannot encode {args.input} with {args.model}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot write {args.out} ({exc})") from None
    print(
        f"wrote {args.out}: {info.num_samples} samples x {info.shape} codes, "
        f"K={info.codebook_size}, {info.coding}: {info.file_bytes} bytes (header "
        f"{info.header_bytes}, payload {info.payload_bytes}) = "
        f"{info.file_bits_per_sample:.2f} bits/sample ({info.payload_bits_per_sample:.2f} payload)"
    )
    return 0


def _cmd_decode(args: argparse.Namespace) -> int:
    from seqae.files import atomic_write_bytes

    refuse_overwriting_inputs(args.out, [args.codes, *_model_files(args.model)], what="--out")
    _check_batch_size(args.batch_size)
    model, _ = _load_model(args.model)
    try:
        x_hat = decode_from_file(model, args.codes, batch_size=args.batch_size)
    except (CodeFileError, FileNotFoundError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    buffer = io.BytesIO()
    np.save(buffer, x_hat.numpy())
    try:
        atomic_write_bytes(args.out, buffer.getvalue())
    except OSError as exc:
        raise UsageError(f"cannot write {args.out} ({exc})") from None
    print(f"wrote {args.out}: reconstructions of shape {tuple(x_hat.shape)}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    try:
        info = read_header(args.codes)
    except (CodeFileError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(info.as_dict(), indent=2))
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``seqae codes encode|decode|info`` to an argparse subparsers object.

    The ``cli`` component of the registry: each subcommand's parser has a ``func`` default that
    takes the parsed arguments and returns an exit status; it raises the errors of
    :func:`seqae.errors.user_errors` for a user's mistake (``seqae.cli.main`` turns them into
    one line and exit status 2).

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    parser = subparsers.add_parser(
        "codes", help="encode data to a code file with a VQ model, decode it, or describe it"
    )
    sub = parser.add_subparsers(dest="codes_command", required=True)

    enc = sub.add_parser("encode", help="encode an array of inputs to a code file")
    enc.add_argument("--model", required=True, help="saved model directory (save_pretrained)")
    enc.add_argument("--input", required=True, help=".npy or .npz array of inputs (N, ...)")
    enc.add_argument("--key", default=None, help="array name inside an .npz input")
    enc.add_argument("--out", required=True, help="code file to write")
    enc.add_argument("--coding", choices=CODINGS, default="adaptive")
    enc.add_argument("--batch-size", type=int, default=256)
    enc.set_defaults(func=_cmd_encode)

    dec = sub.add_parser("decode", help="decode a code file to reconstructions (.npy)")
    dec.add_argument("codes", help="code file")
    dec.add_argument("--model", required=True, help="the saved model that wrote the codes")
    dec.add_argument("--out", required=True, help=".npy file for the reconstructions")
    dec.add_argument("--batch-size", type=int, default=256)
    dec.set_defaults(func=_cmd_decode)

    info = sub.add_parser("info", help="print a code file's header as JSON (after checking it)")
    info.add_argument("codes", help="code file")
    info.set_defaults(func=_cmd_info)
    return parser
