"""Data and checks shared by the text models' tests (test_summary_models, test_backbones,
test_summarize): a few sentences to train a tokenizer on (the ``tok`` fixture of
tests/text/conftest.py), three articles with out-of-vocabulary words and their summaries, as
the models read them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from seqae.text.seq2seq import Summaries

if TYPE_CHECKING:
    from seqae.text.tokenizer import ExtendedBatch, WordTokenizer

#: What the ``tok`` fixture's tokenizer is trained on.
TEXTS = [
    "the cat sat on the mat .",
    "the dog sat on the mat .",
    "a cat and a dog ran to the park .",
    "the park is big and the dog is small .",
]
ARTICLES = [
    "the zebra sat on the mat and the cat ran .",  # zebra: out of vocabulary
    "a dog ran to the big park .",
    "the quokka and the wombat sat on a mat .",  # two out-of-vocabulary words
]
#: One summary per article of :data:`ARTICLES`.
SUMMARIES = ["zebra sat .", "dog ran", "quokka and wombat sat"]


def words_of(tok: WordTokenizer, texts: list[str]) -> list[list[str]]:
    """Each text's words."""
    return [tok.tokenize(t).words for t in texts]


def article_batch(tok: WordTokenizer, texts: list[str] = ARTICLES) -> ExtendedBatch:
    """The articles as the generator reads them (extended ids)."""
    return tok.extend_batch(words_of(tok, texts))


def summary_batch(
    tok: WordTokenizer, src: ExtendedBatch, texts: list[str] = SUMMARIES
) -> Summaries:
    """Summaries of the articles ``src`` in their extended vocabulary, ending with ``</s>``."""
    tgt = tok.extend_targets(words_of(tok, texts), src.oov_words)
    return Summaries(tgt.extended_ids, tgt.lengths, src.max_oovs)


def article_targets(
    tok: WordTokenizer, src: ExtendedBatch, texts: list[str] = ARTICLES
) -> torch.Tensor:
    """The articles' extended ids ending with ``</s>`` (what the reconstructor rebuilds)."""
    return tok.extend_targets(words_of(tok, texts), src.oov_words).extended_ids


def assert_finite_grads(model: torch.nn.Module) -> None:
    """Every weight has a finite gradient, and not all of them are zero."""
    grads = {n: p.grad for n, p in model.named_parameters()}
    missing = [n for n, g in grads.items() if g is None]
    assert not missing, f"no gradient for {missing}"
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert sum(float(g.abs().sum()) for g in grads.values()) > 0


def check_decoded(out, eos: int, pad: int, max_words: int) -> None:
    """Decoded summaries (``Sampled``/``Decoded``) keep the length limit: at most
    ``max_words`` words, ``</s>`` only last (and missing only at the limit), padding after."""
    for row, n in zip(out.ids.tolist(), out.lengths.tolist(), strict=True):
        real, padding = row[:n], row[n:]
        assert all(t == pad for t in padding)
        words = [t for t in real if t != eos]
        assert len(words) <= max_words
        assert eos not in real[:-1]  # </s> only ends a summary
        assert real[-1] == eos or len(words) == max_words
    assert out.mask.tolist() == [[i < n for i in range(out.ids.shape[1])] for n in out.lengths]
