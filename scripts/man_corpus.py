"""Build the man-page corpus: a second article/summary corpus on which no setting was tuned.

Reads the English manual pages installed on this machine (``/usr/share/man/man1`` .. ``man8``)
into a user's files for the summary recipes (:mod:`seqae.text.manpages` says how)::

    .venv/bin/python scripts/man_corpus.py --out runs/man_corpus

It writes ``articles.txt``, ``summaries.txt``, ``valid.jsonl``, ``test.jsonl`` and
``corpus.json`` (sizes, filters, drops per reason) into ``--out``, plus ``summary_ae.yaml``: an
overlay of the recipe's own ``summary_ae.yaml`` that changes only the data (``data.corpus:
null`` and the four ``data.*`` files) and the run folder. It is needed because ``seqae run``
refuses ``data.corpus=null`` on the command line (``summary_ae.yaml`` gives the key a value and
the recipe's ``NULLABLE_KEYS`` does not list it), while an overlay may set a key to null. The
last line printed is the command that trains on the corpus (shell-quoted). Every path in the
config is a quoted YAML string, so it reads back exactly as given.

Bad input (no pages, too few usable pages for every part, a used ``--out`` without
``--overwrite``, an output that is a page, an empty ``--out`` or ``--run-dir``, a section
outside ``MAN_SECTIONS``) gets one line and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from seqae.cli import recipes_dir
from seqae.errors import user_errors
from seqae.files import atomic_write_text
from seqae.text.manpages import MAN_CORPUS_FILES, MAN_SECTIONS, build_man_corpus

RECIPE = "summary_ae"
RUN_CONFIG = "summary_ae.yaml"
#: The data keys of the recipe and the corpus part each one reads.
DATA_KEYS = {
    "articles": "train_articles",
    "summaries": "train_summaries",
    "valid_pairs": "valid",
    "test_pairs": "test",
}


def _yaml_string(value: object) -> str:
    """``value`` as a double-quoted YAML scalar (JSON's string syntax is YAML's)."""
    return json.dumps(str(value))


def _path_argument(value: str) -> str:
    """An argparse ``type``: a path that is not empty and holds no line break."""
    if not value:
        raise argparse.ArgumentTypeError("empty; expected a folder path")
    if "\n" in value or "\r" in value:
        raise argparse.ArgumentTypeError(f"{value!r} holds a line break; expected a folder path")
    return value


def train_command(run_config: Path) -> str:
    """The shell command that trains on the corpus, its path quoted for the shell."""
    return f"seqae run {RECIPE} --config {shlex.quote(str(run_config))}"


def run_config_text(out: Path, run_dir: str) -> str:
    """The overlay of ``recipes/configs/summary_ae.yaml`` that trains on the corpus in ``out``.

    Args:
        out: The corpus folder, as the user named it (its files are named the same way, so
            relative paths are relative to the folder ``seqae run`` is started from).
        run_dir: The run's ``output_dir``.

    Every path is written as a quoted YAML string, so spaces, ``#``, ``: `` and an empty
    name read back exactly.
    """
    base = recipes_dir() / "configs" / f"{RECIPE}.yaml"
    try:
        base_name = os.path.relpath(base.resolve(), out.resolve())
    except ValueError:  # another drive
        base_name = str(base.resolve())
    lines = [
        f"# {train_command(out / RUN_CONFIG)}",
        "# The man-page corpus (scripts/man_corpus.py) as a user's files; every other setting",
        f"# is {RECIPE}.yaml's (none was tuned on this corpus).",
        f"base: {_yaml_string(base_name)}",
        f"output_dir: {_yaml_string(run_dir)}",
        "data:",
        "  corpus: null",
        *(
            f"  {key}: {_yaml_string(out / MAN_CORPUS_FILES[part])}"
            for key, part in DATA_KEYS.items()
        ),
    ]
    return "\n".join(lines) + "\n"


def report(info: dict[str, Any], command: str) -> str:
    """What the script prints: sizes, drops, and the command to run."""
    s = info["sizes"]
    dropped = ", ".join(f"{reason} {n}" for reason, n in info["filtered"].items()) or "none"
    return "\n".join(
        [
            f"man corpus in {info['directory']}: {s['train_articles']} train articles, "
            f"{s['train_summaries']} train summaries, {s['valid']} valid pairs, {s['test']} "
            f"test pairs (from {info['pages']} pages, {info['links']} links; "
            f"{info['seconds']:.1f} s)",
            f"dropped: {dropped}",
            f"train on it: {command}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, build the corpus and its run config, print the report."""
    parser = argparse.ArgumentParser(
        prog="man_corpus.py", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "--out", required=True, type=_path_argument, help="output folder of the corpus"
    )
    parser.add_argument(
        "--root",
        action="append",
        metavar="DIR",
        help="a manual folder holding man1..man8 (repeat; default /usr/share/man)",
    )
    parser.add_argument(
        "--section",
        action="append",
        type=int,
        choices=MAN_SECTIONS,
        metavar="N",
        help=f"a section to read (repeat; default {' '.join(map(str, MAN_SECTIONS))})",
    )
    parser.add_argument(
        "--run-dir",
        default="runs/summary_ae_man",
        type=_path_argument,
        help="output_dir of the summary_ae run in the written config (default %(default)s)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the corpus files in a non-empty --out"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    run_config = out / RUN_CONFIG
    try:
        info = build_man_corpus(
            out,
            roots=tuple(args.root or ("/usr/share/man",)),
            sections=tuple(args.section or MAN_SECTIONS),
            overwrite=args.overwrite,
            extra_outputs=[run_config],
        )
    except user_errors() as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    atomic_write_text(run_config, run_config_text(out, args.run_dir))
    print(report(info, train_command(run_config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
