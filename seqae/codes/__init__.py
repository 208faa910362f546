"""Discrete codes on disk: a small file format, bit packing, an arithmetic coder, and a baseline.

A VQ-VAE (van den Oord et al. 2017, arXiv 1711.00937) turns an image into a few integer
indices into its codebook; storing those indices is lossy compression. This package writes and
reads such integer code arrays and measures what they cost.

    info = encode_to_file(model, x_test, "codes.sqc", coding="adaptive")   # model: VQ AE
    x_hat = decode_from_file(model, "codes.sqc")      # refuses codes made by another model
    print(info.file_bits_per_sample, info.payload_bits_per_sample)

The same from a shell (``add_parser`` adds this subcommand to ``seqae``)::

    seqae codes encode --model runs/vqvae/model --input x.npy --out codes.sqc
    seqae codes decode --model runs/vqvae/model codes.sqc --out x_hat.npy
    seqae codes info codes.sqc

One concept per module:

- :mod:`~seqae.codes.bits`: packing symbols at ``ceil(log2 K)`` bits each;
- :mod:`~seqae.codes.entropy`: static and adaptive arithmetic coding, the ideal code length;
- :mod:`~seqae.codes.format`: the code-file header, its CRCs, and reading and writing files
  (the byte layout is documented there);
- :mod:`~seqae.codes.model`: a VQ autoencoder's codes to and from files, model hashes, and
  the check of inputs against the range the model was trained on;
- :mod:`~seqae.codes.baseline`: :class:`QuantizedPCA`, the transform-coding baseline;
- :mod:`~seqae.codes.command`: the ``seqae codes`` command.
"""

from __future__ import annotations

from seqae.codes.baseline import QuantizedPCA
from seqae.codes.bits import bit_width, pack_bits, unpack_bits
from seqae.codes.command import add_parser
from seqae.codes.entropy import (
    ADAPTIVE_INCREMENT,
    adaptive_decode,
    adaptive_encode,
    arithmetic_decode,
    arithmetic_encode,
    empirical_entropy_bits,
)
from seqae.codes.format import (
    CODINGS,
    FORMAT_VERSION,
    MAGIC,
    CodeFile,
    CodeFileError,
    CodeFileInfo,
    Coding,
    CorruptCodeFileError,
    ModelMismatchError,
    NotACodeFileError,
    TruncatedCodeFileError,
    UnsupportedVersionError,
    decode_codes,
    encode_codes,
    read_codes,
    read_header,
    write_codes,
)
from seqae.codes.model import (
    DATA_RANGE_KEY,
    RANGE_TOLERANCE,
    InputRangeError,
    check_input_range,
    decode_from_file,
    decode_model_codes,
    encode_to_file,
    expected_input_range,
    model_codes,
    model_hash,
    save_with_data_range,
)

__all__ = [
    "ADAPTIVE_INCREMENT",
    "CODINGS",
    "DATA_RANGE_KEY",
    "FORMAT_VERSION",
    "MAGIC",
    "CodeFile",
    "CodeFileError",
    "CodeFileInfo",
    "Coding",
    "CorruptCodeFileError",
    "InputRangeError",
    "ModelMismatchError",
    "NotACodeFileError",
    "QuantizedPCA",
    "RANGE_TOLERANCE",
    "TruncatedCodeFileError",
    "UnsupportedVersionError",
    "add_parser",
    "adaptive_decode",
    "adaptive_encode",
    "arithmetic_decode",
    "arithmetic_encode",
    "bit_width",
    "check_input_range",
    "decode_codes",
    "decode_from_file",
    "decode_model_codes",
    "encode_codes",
    "encode_to_file",
    "empirical_entropy_bits",
    "expected_input_range",
    "model_codes",
    "model_hash",
    "pack_bits",
    "read_codes",
    "read_header",
    "save_with_data_range",
    "unpack_bits",
    "write_codes",
]
