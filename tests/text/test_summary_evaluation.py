"""The shared evaluation of summarizers: ROUGE passes through, the Lead rows, the private-code
measures, the reconstruction measure (from the summaries' text, the same number as from the
generator's own output tensors), the paired differences, the report, and refusal of bad arguments."""

from __future__ import annotations

import json
import math

import pytest
import torch

from seqae.extras import missing_modules

if missing_modules("text"):
    pytest.skip("seqae's text extra is not installed", allow_module_level=True)

from seqae.metrics.rouge import corpus_rouge, lead_n, paired_rouge_difference  # noqa: E402
from seqae.text.evaluation import (  # noqa: E402
    article_words,
    code_measures,
    evaluate_summaries,
    reconstruction_items,
    slug,
    summary_words,
)
from seqae.text.generator import PointerGenerator  # noqa: E402
from seqae.text.language_model import perplexity, train_language_model  # noqa: E402
from seqae.text.reconstructor import Reconstructor  # noqa: E402
from seqae.text.summarize import Summarizer, summarize_texts  # noqa: E402
from seqae.text.tokenizer import WordTokenizer  # noqa: E402

TRAIN_SUMMARIES = [
    "the cat sat on the mat .",
    "the dog sat on the mat .",
    "a cat and a dog ran to the park .",
    "the park is big and the dog is small .",
]
# zebra, quokka, wombat and emu are outside the vocabulary
ARTICLES = [
    "the zebra zebra zebra zebra sat on the mat .",
    "a dog ran to the big park .",
    "the quokka and the wombat wombat sat on a mat .",
    "a big dog sat on the small cat .",
    "emu emu emu ran to the park and the dog sat .",
]
REFERENCES = [
    "zebra sat on the mat",
    "dog ran to park",
    "wombat sat on a mat",
    "big dog sat on cat",
    "emu ran to the park",
]
MODEL = ["zebra sat", "dog ran", "wombat sat", "dog sat", "emu ran"]
MAX_ARTICLE_WORDS = 8
SIZES = {"emb_dim": 8, "hidden": 8}


@pytest.fixture(scope="module")
def tok() -> WordTokenizer:
    return WordTokenizer.train(TRAIN_SUMMARIES, vocab_size=100, min_frequency=1)


@pytest.fixture(scope="module")
def lm(tok):
    words = [tok.tokenize(s).words for s in TRAIN_SUMMARIES]
    return train_language_model(
        tok,
        words,
        emb_dim=8,
        hidden=16,
        layers=1,
        dropout=0.0,
        steps=20,
        batch_size=4,
        lr=1e-2,
        seed=0,
    )


@pytest.fixture(scope="module")
def rec(tok) -> Reconstructor:
    torch.manual_seed(0)
    return Reconstructor(vocab_size=tok.vocab_size, **SIZES).eval()


@pytest.fixture(scope="module")
def vocabulary(tok) -> set[str]:
    return {w for s in TRAIN_SUMMARIES for w in tok.tokenize(s).words}


def _evaluate(tok, lm, **overrides):
    kwargs = {
        "articles": ARTICLES,
        "references": REFERENCES,
        "systems": {"model": MODEL, "warm start": REFERENCES},
        "primary": "model",
        "tokenizer": tok,
        "language_model": lm,
        "summary_vocabulary": None,
        "reconstructor": None,
        "max_article_words": MAX_ARTICLE_WORDS,
        "n_boot": 50,
        "seed": 0,
        "examples": 2,
        "batch_size": 2,
        "title": "test report",
        **overrides,
    }
    return evaluate_summaries(**kwargs)


@pytest.fixture(scope="module")
def full(tok, lm, rec, vocabulary):
    return _evaluate(tok, lm, reconstructor=rec, summary_vocabulary=vocabulary)


# -- ROUGE, Lead rows, paired differences ------------------------------------------------------


def test_known_rouge_passes_through(tok, lm) -> None:
    # 3 of the 5 bigrams of "the cat sat on the mat" are in "the cat lay on the mat"
    out = _evaluate(
        tok,
        lm,
        articles=["the cat sat on the mat today"],
        references=["the cat sat on the mat"],
        systems={"model": ["the cat lay on the mat"], "exact": ["the cat sat on the mat"]},
    )
    assert out.metrics["model_rouge2"] == pytest.approx(0.6)
    assert out.metrics["model_rouge1"] == pytest.approx(5 / 6)
    for variant in ("rouge1", "rouge2", "rouge_l"):
        assert out.metrics[f"exact_{variant}"] == 1.0


def test_rouge_rows_equal_corpus_rouge(full) -> None:
    m = full.metrics
    for name, hyps in {
        "model": MODEL,
        "warm_start": REFERENCES,
        "lead_8": [lead_n(a, 8) for a in ARTICLES],
    }.items():
        want = corpus_rouge(REFERENCES, hyps, n_boot=50, seed=0)
        for variant in ("rouge1", "rouge2", "rouge_l"):
            iv = getattr(want, variant)
            assert m[f"{name}_{variant}"] == iv.estimate
            assert m[f"{name}_{variant}_interval"] == [iv.low, iv.high]
        assert m[f"{name}_mean_words"] == want.mean_words
    assert m["warm_start_rouge1"] == 1.0
    assert "reference_rouge1" not in m  # the references have no ROUGE row
    assert m["n_test"] == len(ARTICLES)


def test_lead_n_follows_the_primary_system(tok, lm, full) -> None:
    assert full.metrics["lead_n_mean_words"] == full.metrics["model_mean_words"] == 2.0
    want = corpus_rouge(REFERENCES, [lead_n(a, 2) for a in ARTICLES], n_boot=50, seed=0)
    assert full.metrics["lead_n_rouge1"] == want.rouge1.estimate
    other = _evaluate(tok, lm, primary="warm start")
    assert other.metrics["lead_n_mean_words"] == pytest.approx(4.8)  # the references' mean
    assert "warm_start_minus_model_rouge1" in other.metrics


def test_paired_differences(full) -> None:
    m = full.metrics
    lead8 = [lead_n(a, 8) for a in ARTICLES]
    for other, hyps in {"lead_8": lead8, "warm_start": REFERENCES}.items():
        diff = paired_rouge_difference(REFERENCES, hyps, MODEL, n_boot=50, seed=0)
        for variant in ("rouge1", "rouge2", "rouge_l"):
            iv = getattr(diff, variant)
            assert m[f"model_minus_{other}_{variant}"] == iv.estimate
            assert m[f"model_minus_{other}_{variant}_interval"] == [iv.low, iv.high]
            assert iv.estimate == pytest.approx(m[f"model_{variant}"] - m[f"{other}_{variant}"])
    assert "model_minus_lead_n_rouge1" in m
    assert "model_minus_model_rouge1" not in m


# -- readability and private-code measures -----------------------------------------------------


def test_code_measures_by_hand() -> None:
    out = code_measures(
        [["a", "b", "a"], ["c"]], [["a", "x"], ["y"]], summary_vocabulary={"a", "c"}
    )
    assert out.repeat_rate == 1 / 4  # the second "a"
    assert out.novel_rate == 2 / 4  # "b" and "c"
    assert out.out_of_language_rate == 1 / 4  # "b"
    assert (out.distinct_words, out.type_token_ratio) == (3, 3 / 4)
    empty = code_measures([[]], [["a"]], summary_vocabulary=None)
    assert (empty.repeat_rate, empty.out_of_language_rate, empty.distinct_words) == (None, None, 0)


def test_repeating_and_copying_systems(tok, lm, vocabulary) -> None:
    out = _evaluate(
        tok,
        lm,
        systems={
            "echo": [" ".join(["hello"] * 20)] * len(ARTICLES),
            "copy": [lead_n(a, 5) for a in ARTICLES],
        },
        primary="copy",
        summary_vocabulary=vocabulary,
    ).metrics
    assert out["echo_repeat_rate"] == 19 / 20
    assert out["echo_distinct_words"] == 1
    assert out["echo_novel_rate"] == 1.0
    assert out["echo_out_of_language_rate"] == 1.0
    assert out["copy_novel_rate"] == 0.0
    assert out["lead_8_novel_rate"] == out["lead_n_novel_rate"] == 0.0
    assert out["copy_out_of_language_rate"] > 0  # zebra, quokka and emu are not in summaries
    assert out["echo_perplexity"] > out["reference_perplexity"]


def test_reference_row(tok, lm, full) -> None:
    m = full.metrics
    words = [tok.tokenize(r).words for r in REFERENCES]
    assert m["reference_perplexity"] == pytest.approx(perplexity(lm, tok, words), rel=1e-9)
    low, high = m["reference_perplexity_interval"]
    assert low <= m["reference_perplexity"] <= high
    assert m["reference_mean_words"] == pytest.approx(4.8)
    # the references are the "warm start" system here: every shared measure agrees
    for key in ("perplexity", "repeat_rate", "novel_rate", "reconstruction_nll"):
        assert m[f"reference_{key}"] == m[f"warm_start_{key}"]


def test_summary_words_reads_unk_back() -> None:
    tok = WordTokenizer.train(TRAIN_SUMMARIES, vocab_size=100, min_frequency=1)
    assert summary_words(tok, "the <unk> sat.") == ["the", "<unk>", "sat", "."]
    assert summary_words(tok, "") == []
    assert article_words(tok, "", 5) == ["<unk>"]
    assert article_words(tok, "a b c d e f", 3) == ["a", "b", "c"]


def test_slug() -> None:
    assert slug("warm start") == "warm_start"
    assert slug("Lead-8") == "lead_8"
    assert slug("  PPO (λ=0.9) ") == "ppo_0_9"


# -- reconstruction ------------------------------------------------------------------------


def _generator_with_mixed_summaries(tok, words, max_words):
    """A tiny untrained generator whose greedy summaries include one cut at the limit, one that
    ends with </s> after a word, and a copied out-of-vocabulary word (searched over seeds and
    the bias of </s>, as an untrained generator rarely ends a summary)."""
    src = tok.extend_batch(words)
    for seed in range(4):
        for bias in (0.0, 0.5, 1.0, 1.5, 2.0):
            torch.manual_seed(seed)
            gen = PointerGenerator(vocab_size=tok.vocab_size, **SIZES).eval()
            with torch.no_grad():
                gen.out.bias[tok.eos_id] += bias
            out = gen.greedy(src, max_words=max_words)
            last = out.ids[torch.arange(len(words)), out.lengths - 1]
            ended = last == tok.eos_id
            if (
                bool((ended & (out.lengths > 1)).any())
                and bool((~ended).any())
                and bool((out.ids >= tok.vocab_size).any())
            ):
                return gen
    pytest.fail("no tiny generator gave cut, ended and copying summaries")


def _direct_reconstruction(gen, rec, tok, words, *, max_words: int) -> tuple[float, float]:
    """The reconstructor's nats per article token and token accuracy from the generator's
    greedy summaries as tensors (never through text): what the text path must reproduce."""
    src = tok.extend_batch(words)
    article = tok.extend_targets(words, src.oov_words).extended_ids
    with torch.no_grad():
        summary = gen.eval().greedy(src, max_words=max_words)
        rec.eval()
        n = (article != tok.pad_id).sum(dim=1)
        nll = -float(rec.log_likelihood(summary, article).sum())
        correct = float((rec.token_accuracy(summary, article) * n).sum())
    return nll / float(n.sum()), correct / float(n.sum())


def test_reconstruction_equals_the_generators_own(tok, lm, rec) -> None:
    max_words = 6
    words = [article_words(tok, text, MAX_ARTICLE_WORDS) for text in ARTICLES]
    gen = _generator_with_mixed_summaries(tok, words, max_words)
    limits = {"max_words": max_words, "max_article_words": MAX_ARTICLE_WORDS}
    texts, _ = summarize_texts(
        Summarizer(gen.eval(), tok, **limits), ARTICLES, **limits, batch_size=2
    )
    want_nll, want_accuracy = _direct_reconstruction(gen, rec, tok, words, max_words=max_words)

    # the texts re-tokenize into the generator's words
    src = tok.extend_batch(words)
    out = gen.greedy(src, max_words=max_words)
    for text, ids, n, oov in zip(texts, out.ids, out.lengths, src.oov_words, strict=True):
        generated = [w for w in tok.ids_to_words(ids[:n], oov) if w != "</s>"]
        assert summary_words(tok, text) == generated

    got = _evaluate(
        tok, lm, systems={"model": texts}, reconstructor=rec, summary_limit=max_words
    ).metrics
    assert got["model_reconstruction_nll"] == pytest.approx(want_nll, rel=1e-6)
    assert got["model_reconstruction_token_accuracy"] == pytest.approx(want_accuracy, rel=1e-6)
    for row in ("lead_8", "lead_n", "reference"):
        assert math.isfinite(got[f"{row}_reconstruction_nll"])
        assert 0.0 <= got[f"{row}_reconstruction_token_accuracy"] <= 1.0


def test_summary_limit_only_changes_summaries_at_the_limit(tok, rec) -> None:
    arts = [article_words(tok, a, MAX_ARTICLE_WORDS) for a in ARTICLES]
    sums = [summary_words(tok, s) for s in ["zebra zebra zebra", "dog", "", "a b c", "emu ran"]]
    finished = reconstruction_items(rec, tok, arts, sums, batch_size=2)
    limited = reconstruction_items(rec, tok, arts, sums, batch_size=2, summary_limit=3)
    for i, words in enumerate(sums):
        if len(words) < 3:
            assert limited.nll[i] == pytest.approx(finished.nll[i], rel=1e-6)
        else:  # read without </s>, as a generator leaves a summary cut at its limit
            assert limited.nll[i] != pytest.approx(finished.nll[i], rel=1e-6)
    assert finished.tokens.tolist() == [len(a) + 1 for a in arts]


# -- the report and the metrics ------------------------------------------------------------


def test_markdown_has_every_row_and_the_examples(full) -> None:
    md = full.markdown
    assert md.startswith("# test report\n")
    for section in ("## ROUGE", "## Readability", "## Paired differences", "## Examples"):
        assert section in md
    for name in ("model", "warm start", "Lead-8", "Lead-N", "reference"):
        assert f"| {name} |" in md
    assert "out-of-language %" in md and "rec. NLL" in md
    assert "**Article 1.**" in md and "**Article 2.**" in md and "**Article 3.**" not in md
    for text in (ARTICLES[1], REFERENCES[1], MODEL[1], lead_n(ARTICLES[1], 8)):
        assert text in md
    assert "| model - Lead-8 |" in md and "| model - warm start |" in md


def test_metrics_are_json_and_optional_parts_are_left_out(tok, lm, full) -> None:
    json.dumps(full.metrics, allow_nan=False)
    for key in ("warm_start_out_of_language_rate", "lead_n_reconstruction_nll_interval"):
        assert key in full.metrics
    bare = _evaluate(tok, lm, examples=0)
    assert not [k for k in bare.metrics if "reconstruction" in k or "out_of_language" in k]
    assert "rec. NLL" not in bare.markdown and "out-of-language" not in bare.markdown
    assert "## Examples" not in bare.markdown


# -- bad arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"articles": [], "references": [], "systems": {"model": []}}, "no articles"),
        ({"references": REFERENCES[:-1]}, "5 articles but 4 references"),
        ({"systems": {"model": MODEL[:-1]}}, "'model' has 4 summaries for 5 articles"),
        ({"systems": {}}, "at least one name"),
        ({"primary": "ours"}, "primary 'ours' is not one of the systems"),
        ({"systems": {"model": MODEL, "lead 8": MODEL}}, "prefix 'lead_8' of 'Lead-8'"),
        ({"systems": {"model": MODEL, "Reference": MODEL}}, "prefix 'reference'"),
        (
            {"systems": {"warm start": MODEL, "warm-start": MODEL}, "primary": "warm start"},
            "prefix 'warm_start'",
        ),
        ({"systems": {"model": MODEL, "--": MODEL}}, "needs a letter or digit"),
        ({"systems": {"model": "zebra sat"}}, "must be a sequence of texts"),
        ({"references": [*REFERENCES[:-1], None]}, r"references\[4\] is a NoneType"),
        ({"n_boot": 0}, "n_boot must be an int >= 1"),
        ({"examples": -1}, "examples must be an int >= 0"),
        ({"max_article_words": 0}, "max_article_words must be an int >= 1"),
        ({"summary_limit": 0}, "summary_limit must be an int >= 1"),
        ({"summary_vocabulary": set()}, "summary_vocabulary must be a non-empty set"),
    ],
)
def test_refuses_bad_arguments(tok, lm, overrides, match) -> None:
    with pytest.raises(ValueError, match=match):
        _evaluate(tok, lm, **overrides)


def test_refuses_models_of_another_vocabulary(tok, lm) -> None:
    other = WordTokenizer.train(["x y z"], vocab_size=100, min_frequency=1)
    with pytest.raises(ValueError, match="language model has"):
        _evaluate(other, lm)
    with pytest.raises(ValueError, match="reconstructor has"):
        _evaluate(tok, lm, reconstructor=Reconstructor(vocab_size=tok.vocab_size + 1, **SIZES))
