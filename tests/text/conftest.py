"""Fixtures shared by the text plugin's tests (the data they read: tests/text/summary_data.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from seqae.text.tokenizer import WordTokenizer


@pytest.fixture(scope="module")
def tok() -> WordTokenizer:
    """A word tokenizer trained on :data:`tests.text.summary_data.TEXTS` (a module may define
    its own ``tok`` instead). Needs the text extra, as the modules that use it."""
    from seqae.text.tokenizer import WordTokenizer
    from tests.text.summary_data import TEXTS

    return WordTokenizer.train(TEXTS, vocab_size=100, min_frequency=1)
