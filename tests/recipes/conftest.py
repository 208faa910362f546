"""Fixtures shared by the recipe tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


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
