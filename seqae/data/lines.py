"""Reading a user's UTF-8 text file as lines, with one-line errors naming the file and line.

Shared by the plugins that read text files (sentences, bracketed trees), so that every one of
them reports a missing file, a folder, or bytes that are not UTF-8 the same way::

    lines = read_utf8_lines(path, what="data.train", error=TreeDataError)

``error`` is the exception class the caller's users see (a :class:`seqae.errors.UsageError`
subclass, so ``seqae`` prints one line and exits 2).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from seqae.errors import UsageError

__all__ = ["decode_utf8_lines", "read_utf8_lines"]

ErrorFactory = Callable[[str], Exception]


def decode_utf8_lines(data: bytes, *, where: str, error: ErrorFactory = UsageError) -> list[str]:
    """The lines of UTF-8 ``data`` (a byte-order mark dropped; ``\\r\\n`` and ``\\n`` end lines;
    a trailing newline ends the last line rather than starting an empty one).

    Args:
        data: The file's bytes.
        where: How to name the file in an error (``"data.train: corpus/train.txt"``).
        error: The exception class (or factory taking the message) to raise.

    Raises:
        error: A byte is not UTF-8; the message names the line, the column and the byte.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error(
            f"{where} line {line}: byte 0x{data[exc.start]:02x} at column {column} is not "
            "UTF-8; expected UTF-8 text"
        ) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_utf8_lines(
    path: str | os.PathLike[str], *, what: str, error: ErrorFactory = UsageError
) -> list[str]:
    """The lines of a UTF-8 text file (see :func:`decode_utf8_lines`).

    Args:
        path: The file.
        what: What the file is, for error messages (a config key, ``"trees file"``).
        error: The exception class (or factory taking the message) to raise.

    Raises:
        error: No such file, a folder, an unreadable file, or bytes that are not UTF-8.
    """
    path = Path(path)
    if not path.exists():
        raise error(f"{what}: {path}: no such file")
    if path.is_dir():
        raise error(f"{what}: {path} is a folder; expected a text file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{what}: {path}: cannot read it ({exc.strerror or exc})") from None
    return decode_utf8_lines(data, where=f"{what}: {path}", error=error)
