"""The output folder of a corpus builder (``seqae data text``, ``seqae data tree``, the man-page
corpus): one check, so that every builder refuses a file or a used folder with the same line::

    used = check_corpus_folder(out, overwrite=overwrite, error=TextCorpusError)
    if used:
        (out / "corpus.json").unlink(missing_ok=True)  # a half-rewritten folder is no corpus
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["check_corpus_folder"]


def check_corpus_folder(
    out: str | os.PathLike[str],
    *,
    overwrite: bool,
    error: Callable[[str], Exception],
    what: str = "--out",
) -> bool:
    """Refuse a corpus folder ``out`` that is a file, or a non-empty folder without
    ``overwrite``.

    Args:
        out: The ``--out`` folder (absent, empty, or used).
        overwrite: Whether the corpus files of a non-empty folder may be replaced.
        error: The builder's exception class (a :class:`~seqae.errors.UsageError`), given the
            message.
        what: How messages name ``out``: the option or config key it came from.

    Returns:
        Whether ``out`` is a non-empty folder (whose corpus files the builder replaces).

    Raises:
        error: ``out`` is a file, or a non-empty folder and not ``overwrite``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise error(f"{what} {out} is a file; expected a folder for the corpus")
    used = out.is_dir() and any(out.iterdir())
    if used and not overwrite:
        raise error(
            f"{what} {out} exists and is not empty; pass --overwrite to replace the corpus "
            "files in it, or choose another folder"
        )
    return used
