"""Reading a user's UTF-8 text file as lines, with one-line errors naming the file and line,
and a line command's ``--input``/``--out`` (a file or ``-``, standard input or output).

Shared by the plugins that read text files (sentences, bracketed trees), so that every one of
them reports a missing file, a folder, or bytes that are not UTF-8 the same way::

    lines = read_utf8_lines(path, what="data.train", error=TreeDataError)

``error`` is the exception class the caller's users see (a :class:`seqae.errors.UsageError`
subclass, so ``seqae`` prints one line and exits 2).

A command that turns input lines into output lines (``seqae summarize``, ``seqae parse``)::

    check_output(args.out, args.input)       # before any work: not an input, not a folder, ...
    lines, name = read_input_lines(args.input, expected="a text file, one sentence a line")
    write_output_lines(args.out, out_lines)  # each line ended by "\\n"; a file atomically
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from seqae.errors import UsageError

__all__ = [
    "STDIO",
    "STDIN_NAME",
    "decode_utf8_lines",
    "read_utf8_lines",
    "read_input_lines",
    "check_output",
    "write_output_lines",
]

#: The ``--input`` or ``--out`` value that names standard input or standard output.
STDIO = "-"
#: How messages name standard input.
STDIN_NAME = "<stdin>"

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


def read_input_lines(source: str, *, expected: str) -> tuple[list[str], str]:
    """``(lines, name)`` of a command's ``--input`` (:data:`STDIO`: standard input, named
    :data:`STDIN_NAME`), as :func:`decode_utf8_lines` reads them.

    Args:
        source: The ``--input`` value.
        expected: What the file should be, for the messages (``"a text file"``).

    Raises:
        UsageError: No such file, a folder, or bytes that are not UTF-8 (one line naming
            ``--input`` and the file).
    """
    if source == STDIO:
        buffer = getattr(sys.stdin, "buffer", None)
        try:
            data = buffer.read() if buffer is not None else sys.stdin.read().encode("utf-8")
        except OSError as exc:
            raise UsageError(
                f"--input {STDIN_NAME}: cannot read it ({_os_reason(exc)}); expected {expected}"
            ) from None
        return decode_utf8_lines(data, where=f"--input {STDIN_NAME}"), STDIN_NAME
    path = Path(source)
    if not path.exists():
        raise UsageError(f"--input {path}: no such file; expected {expected}")
    if path.is_dir():
        raise UsageError(f"--input {path} is a folder; expected {expected}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"--input {path}: cannot read it ({_os_reason(exc)}); expected {expected}"
        ) from None
    return decode_utf8_lines(data, where=f"--input {path}"), str(path)


def _os_reason(exc: OSError) -> str:
    """An OS error for a message: its text (``"Permission denied"``), else the exception."""
    return exc.strerror or str(exc) or type(exc).__name__


def check_output(out: str, source: str) -> None:
    """Refuse a command's ``--out`` before any work: the ``--input`` file itself (also through
    a link), a folder, something else that is not a regular file (a FIFO, a device, a socket:
    writing would replace it), or a path whose folder is missing or is a file.
    :data:`STDIO` (standard output) is always fine.

    A missing folder is refused rather than created: a typo in ``--out`` should not leave new
    folders behind, and no line command needs it (``mkdir -p`` first). An ``--out`` that is a
    symbolic link is fine: the write goes through it to its target
    (:func:`seqae.files.resolve_output`).

    Args:
        out: The ``--out`` value.
        source: The ``--input`` value.

    Raises:
        seqae.files.OutputOverwritesInputError: ``out`` is the input file.
        UsageError: ``out`` is a folder, not a regular file, or not in an existing folder.
    """
    if out == STDIO:
        return
    from seqae.files import OutputNotRegularFileError, refuse_overwriting_inputs, resolve_output

    if source != STDIO:
        refuse_overwriting_inputs(out, [source], what="--out")
    path = Path(out)
    if path.is_dir():
        raise UsageError(f"--out {out} is a folder; expected a file path or -")
    try:
        target = resolve_output(path)
    except OutputNotRegularFileError as exc:
        raise UsageError(f"--out {exc}") from None
    folder = target.parent
    if not folder.exists():
        raise UsageError(
            f"--out {out}: no folder {folder}; expected a file in an existing folder (create it "
            "first) or -"
        )
    if not folder.is_dir():
        raise UsageError(
            f"--out {out}: {folder} is a file, not a folder; expected a file in an existing "
            "folder or -"
        )


def write_output_lines(out: str, lines: Iterable[str]) -> None:
    """Write ``lines``, each ended by a newline, to a command's ``--out``: standard output
    (:data:`STDIO`, flushed) or a file, written atomically (:func:`seqae.files.atomic_write_text`,
    through a symbolic link to its target).

    Args:
        out: The ``--out`` value.
        lines: The output lines (without their newlines).

    Raises:
        UsageError: The file cannot be written (one line naming ``--out`` and the OS error,
            such as a folder without write permission); nothing is left behind.
    """
    text = "".join(f"{line}\n" for line in lines)
    if out == STDIO:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from seqae.files import OutputNotRegularFileError, atomic_write_text

    try:
        atomic_write_text(out, text)
    except OutputNotRegularFileError as exc:
        raise UsageError(f"--out {exc}") from None
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write it ({_os_reason(exc)})") from None
