"""Fixtures shared by the recipe tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny embedded speech corpus (6 voices, 17 sentences), built once for the session by
    the speech recipes' tests (vc, vocoder). Needs espeak-ng and flite: every test that uses it
    is skipped when they are missing."""
    from seqae.audio.corpus import build_speech_corpus

    if shutil.which("flite") is None or shutil.which("espeak-ng") is None:
        pytest.skip("the tiny corpus needs espeak-ng and flite (apt-get install espeak-ng flite)")

    root = tmp_path_factory.mktemp("speech") / "corpus"
    build_speech_corpus(root, preset="tiny", workers=2)
    return root


@pytest.fixture(scope="session")
def text_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny embedded text corpus (300 articles, 300 summaries, 40 + 40 pairs), built once
    for the session from apt's English descriptions by the text recipes' tests (summary_ae,
    summary_ppo); skipped where there are none."""
    from seqae.text.corpus import TextCorpusError, build_text_corpus, find_index_files

    try:
        find_index_files()
    except TextCorpusError as exc:
        pytest.skip(f"no apt English descriptions (Translation-en) here: {exc}")
    root = tmp_path_factory.mktemp("text") / "corpus"
    build_text_corpus(root, preset="tiny")
    return root


@pytest.fixture(scope="session")
def torchrun() -> Callable[..., dict[str, Any]]:
    """Run a recipe in CPU processes under torchrun, from the repository's root:
    ``torchrun(recipe, config, output_dir, *overrides)`` gives the run's metrics.json, and
    fails the test with the end of the processes' output when the run fails.

    The returned function's arguments: the recipe's name, its config's name, the run folder,
    ``key=value`` overrides, then keyword-only ``processes`` (2) and ``timeout`` (seconds, 240).
    """

    def run(
        recipe: str,
        config: str,
        output_dir: Path,
        *overrides: str,
        processes: int = 2,
        timeout: float = 240,
    ) -> dict[str, Any]:
        exe = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
        proc = subprocess.run(
            [exe, "--standalone", f"--nproc_per_node={processes}", "-m", "seqae.cli", "run"]
            + [recipe, "--config", config, f"output_dir={output_dir}", *overrides],
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"},
            cwd=REPO,
            timeout=timeout,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return json.loads((Path(output_dir) / "metrics.json").read_text())

    return run
