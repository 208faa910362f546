"""Writing files safely: the leaf module that every other part of seqae writes through.

Every writer here follows one pattern: write a temporary file in the destination's folder,
flush and fsync it, then ``os.replace`` it over the final name (atomic on POSIX and Windows), so
a crash or kill at any moment leaves either the old file or the new one, never a torn one.
A path that is a symbolic link is written through: the temporary file goes beside the link's
resolved target and replaces the target, so the link stays a link
(:func:`resolve_output`). An existing path that is not a regular file (a FIFO, a device, a
socket, a folder) is refused with :class:`OutputNotRegularFileError` rather than replaced.

:func:`refuse_overwriting_inputs` is the guard a command runs before it writes: an output path
that names one of its inputs (the same file, also through a link) is refused, so no command can
destroy what it reads.

This module imports nothing from seqae, so the core, the training layer and the plugins can all
use it without depending on each other.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import torch
from torch import Tensor

__all__ = [
    "TMP_PREFIX",
    "atomic_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "save_safetensors_atomic",
    "OutputNotRegularFileError",
    "resolve_output",
    "OutputOverwritesInputError",
    "refuse_overwriting_inputs",
    "same_file",
]

TMP_PREFIX = ".tmp-"


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class OutputNotRegularFileError(ValueError):
    """An output path names something other than a regular file (a FIFO, a device, a socket,
    a folder, a symbolic link loop); writing a file over it would replace it."""


def _file_kind(mode: int) -> str:
    """What a ``st_mode`` names, for messages (``"a FIFO"``)."""
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link that does not resolve (a loop)"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def resolve_output(path: str | os.PathLike[str]) -> Path:
    """The file a write to ``path`` replaces: ``path`` itself, or for a symbolic link (also a
    chain of them, or a dangling one) its resolved target, so the link stays a link.

    Args:
        path: The output path.

    Raises:
        OutputNotRegularFileError: The path (or the link's target) exists and is not a regular
            file: writing would replace a FIFO, a device, a socket or a folder.
    """
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = os.lstat(target).st_mode
    except OSError:
        return target  # missing (a new file), or the write itself reports what is wrong
    if not stat.S_ISREG(mode):
        shown = str(path) if target == path else f"{path} (a link to {target})"
        raise OutputNotRegularFileError(
            f"{shown} is {_file_kind(mode)}; expected a regular file to write (or a new path)"
        )
    return target


def _atomic_write(
    path: str | os.PathLike[str], write: Callable[[IO[bytes]], None], *, sync_dir: bool = True
) -> Path:
    """Call ``write(file)`` on a temp file next to ``path`` and move it into place.

    ``sync_dir=False`` leaves the rename to be persisted by a later write into the same
    directory that syncs it (several files written together need one directory sync).
    A symbolic link is written through and a path that is not a regular file refused
    (:func:`resolve_output`); a missing parent folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    target = resolve_output(path)
    # O_EXCL on a random name: no collisions; mode 0o666 & ~umask, like a plain open().
    tmp = target.parent / f"{TMP_PREFIX}{target.name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if sync_dir:
        _fsync_dir(target.parent)
    return path


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save(obj, path)``, atomically: ``path`` is either untouched or complete."""
    return _atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, sync_dir: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (``sync_dir``: see ``_atomic_write``)."""
    return _atomic_write(path, lambda f: f.write(data), sync_dir=sync_dir)


def atomic_write_text(
    path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8", sync_dir: bool = True
) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode(encoding), sync_dir=sync_dir)


def atomic_write_json(
    path: str | os.PathLike[str], obj: Any, *, indent: int = 2, sync_dir: bool = True
) -> Path:
    """Write ``obj`` as JSON (UTF-8, trailing newline) to ``path`` atomically."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False) + "\n"
    return atomic_write_text(path, text, sync_dir=sync_dir)


def save_safetensors_atomic(
    tensors: Mapping[str, Tensor],
    path: str | os.PathLike[str],
    *,
    metadata: Mapping[str, str] | None = None,
    sync_dir: bool = True,
) -> Path:
    """``safetensors.torch.save_file`` atomically. Tensors are made contiguous and moved to CPU;
    tensors sharing storage (tied weights) must be de-duplicated by the caller. ``sync_dir=False``:
    the rename is persisted by the next write into the directory that syncs it."""
    from safetensors.torch import save

    plain = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    data = save(plain, metadata=dict(metadata) if metadata is not None else None)
    return atomic_write_bytes(path, data, sync_dir=sync_dir)


# -- outputs never overwrite inputs -------------------------------------------------------------


class OutputOverwritesInputError(ValueError):
    """An output path names one of the command's inputs; writing it would destroy the input."""


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name the same file: the same inode where both exist (so hard and
    symbolic links count), the same resolved path otherwise."""
    a, b = Path(a), Path(b)
    with contextlib.suppress(OSError):
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def refuse_overwriting_inputs(
    output: str | os.PathLike[str],
    inputs: Iterable[str | os.PathLike[str] | None],
    *,
    what: str = "output",
) -> None:
    """Raise :class:`OutputOverwritesInputError` when ``output`` is one of ``inputs``.

    Args:
        output: The file a command is about to write.
        inputs: Every file the command reads for it (``None`` entries are skipped).
        what: How the message names the output (``"--out"``, ``"manifest row 3's output"``).
    """
    for source in inputs:
        if source is not None and same_file(output, source):
            raise OutputOverwritesInputError(
                f"{what} {output} is also an input ({source}); writing it would destroy the "
                "input: choose another output path"
            )
