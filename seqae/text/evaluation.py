"""One evaluation for every summarizer: ROUGE against the references, readability under a
held-out language model, signs of a private code, and how well the article can be rebuilt from
the summary.

An article -> summary -> article autoencoder (Wang & Lee 2018, arXiv 1810.02851) can score
well on reconstruction with "summaries" that are a private code between its two halves, and a
discriminator trained against the writer can be pleased without the summaries being language.
So :func:`evaluate_summaries` scores the systems' *texts*, all the same way, with judges that
never trained against the writer:

- ROUGE-1/2/L F1 against the reference summaries, with bootstrap intervals
  (:func:`~seqae.metrics.rouge.corpus_rouge`), and the primary system minus every other row with
  a paired bootstrap (:func:`~seqae.metrics.rouge.paired_rouge_difference`).
- Two baselines as rows: ``Lead-8`` (an article's first 8 words) and ``Lead-N`` (its first
  words at the primary system's mean length, :func:`~seqae.metrics.rouge.lead_baseline`: ROUGE
  F1 depends on length). The ``reference`` row (the real test summaries) shows what language
  looks like on every measure below; it has no ROUGE.
- ``perplexity``: ``exp`` of the nats per token (``</s>`` included) under a
  :class:`~seqae.text.language_model.SummaryLanguageModel` trained on the real training
  summaries. Low when the word order is one people write; a code that strings content words
  in an order that carries information, or word salad, is improbable under it.
- ``repeat_rate``: the share of summary tokens equal to an earlier token of the same summary.
  Repeating a token is the cheapest way for a writer rewarded by reconstruction to carry
  information (counts, positions) or to fill its length; people repeat mostly function words
  and punctuation (the reference row gives the natural level).
- ``novel_rate``: the share of summary tokens absent from the article (its first
  ``max_article_words`` tokens, what the summarizer read). A private code can use any
  vocabulary word as a symbol for something in the article; a summary people write mostly
  reuses the article's words. An extractive system scores (about) 0.
- ``out_of_language_rate`` (with ``summary_vocabulary``): the share of summary tokens never
  seen in the training summaries. Symbols taken from the article's rare words or from parts of
  the vocabulary summaries never use mark a code directly, without a model that could be
  fooled; the reference row shows how often real test summaries use unseen words.
- ``distinct_words`` and ``type_token_ratio``: the distinct tokens over the whole output, and
  their share of all its tokens. A code tends to collapse onto a few symbols (few distinct
  words, a low ratio); a degenerate writer that copies odd article words has a high one.
  The ratio falls with the output's size, so compare it between systems of similar length.
- ``reconstruction_nll`` and ``reconstruction_token_accuracy`` (with ``reconstructor``): the
  reconstructor's nats per article token and teacher-forced token accuracy of the article
  (its first ``max_article_words`` tokens and ``</s>``) given the system's summary, for every
  row. A summary that is language and carries the article's content scores well here *and*
  above; a private code scores well here only.

Every measure except ROUGE and the mean length (white-space words,
:func:`~seqae.metrics.rouge.count_words`) reads a summary as the tokenizer's tokens
(:func:`summary_words`); rates are pooled over all tokens of a system (corpus-level ratios).

Metric keys are ``{slug}_{measure}`` where the slug of a row's name is its lowercase form with
each run of characters other than ``a-z0-9`` replaced by ``_`` (and stripped from the ends):
``"warm start"`` -> ``warm_start``, ``"Lead-8"`` -> ``lead_8``, ``"Lead-N"`` -> ``lead_n``,
the references -> ``reference``. Per row: ``rouge1``, ``rouge2``, ``rouge_l`` (F1) each with
``_interval`` ``[low, high]``, ``mean_words`` (no ROUGE for ``reference``); ``perplexity`` and
``perplexity_interval``; ``repeat_rate``, ``novel_rate``, ``out_of_language_rate``,
``distinct_words``, ``type_token_ratio``; ``reconstruction_nll``,
``reconstruction_nll_interval``, ``reconstruction_token_accuracy``. Differences:
``{primary}_minus_{other}_{rouge1,rouge2,rouge_l}`` and their ``_interval`` (positive: the
primary system scores higher). And ``n_test``. A rate with no tokens to count is ``None``.

    >>> result = evaluate_summaries(
    ...     articles=articles, references=references, systems={"model": ours, "warm start": warm},
    ...     primary="model", tokenizer=tok, language_model=lm, summary_vocabulary=seen,
    ...     reconstructor=rec, max_article_words=400, n_boot=1000, seed=0, examples=5,
    ...     title="summary_ae: test set")
    >>> result.metrics["model_rouge1"], result.markdown
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from seqae.metrics.bootstrap import BootstrapInterval, bootstrap_ratio
from seqae.metrics.reconstruction import evaluating, model_device
from seqae.metrics.rouge import (
    CorpusRouge,
    corpus_rouge,
    count_words,
    lead_baseline,
    lead_n,
    paired_rouge_difference,
    rouge_table,
)
from seqae.metrics.tables import format_estimate, format_number, markdown_table
from seqae.text.language_model import SummaryLanguageModel, sequence_nll
from seqae.text.reconstructor import Reconstructor
from seqae.text.seq2seq import Summaries
from seqae.text.tokenizer import UNK, WordTokenizer

__all__ = [
    "LEAD_WORDS",
    "LEAD_FIXED",
    "LEAD_MATCHED",
    "REFERENCE",
    "SummaryEvaluation",
    "CodeMeasures",
    "ReconstructionItems",
    "slug",
    "summary_words",
    "article_words",
    "code_measures",
    "reconstruction_items",
    "evaluate_summaries",
]

#: Words of the fixed-length lead baseline.
LEAD_WORDS = 8
#: Row names of the two baselines and of the reference summaries.
LEAD_FIXED, LEAD_MATCHED, REFERENCE = f"Lead-{LEAD_WORDS}", "Lead-N", "reference"
WHO = "evaluate_summaries"


class SummaryEvaluation(NamedTuple):
    """What :func:`evaluate_summaries` returns."""

    #: Flat JSON-able metrics (see the module's docstring for the keys).
    metrics: dict[str, Any]
    #: The report: title, tables, paired differences and examples.
    markdown: str


class CodeMeasures(NamedTuple):
    """The private-code measures of one system's output (see the module's docstring)."""

    #: Share of tokens equal to an earlier token of the same summary (None: no tokens).
    repeat_rate: float | None
    #: Share of tokens absent from the summary's article (None: no tokens).
    novel_rate: float | None
    #: Share of tokens outside the training summaries' words (None: no vocabulary or tokens).
    out_of_language_rate: float | None
    #: Distinct tokens over the whole output.
    distinct_words: int
    #: ``distinct_words`` over all tokens (None: no tokens).
    type_token_ratio: float | None


class ReconstructionItems(NamedTuple):
    """The reconstructor's scores of each article given its summary."""

    #: ``(n,)`` nats of each article (summed over its tokens).
    nll: np.ndarray
    #: ``(n,)`` scored tokens of each article (its words and ``</s>``).
    tokens: np.ndarray
    #: ``(n,)`` tokens whose teacher-forced argmax is right.
    correct: np.ndarray


def slug(name: str) -> str:
    """A row name as a metric-key prefix: lowercase, each run of characters outside ``a-z0-9``
    replaced by ``_``, no ``_`` at the ends (``"warm start"`` -> ``"warm_start"``)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def summary_words(tokenizer: WordTokenizer, text: str) -> list[str]:
    """The tokens of a summary text; the literal ``<unk>`` a decoder writes for an unknown word
    is read back as the ``<unk>`` token (the tokenizer alone would split it into ``< unk >``).

    Args:
        tokenizer: The word tokenizer.
        text: The summary.
    """
    words: list[str] = []
    for k, part in enumerate(text.split(UNK)):
        if k:
            words.append(UNK)
        words += tokenizer.tokenize(part).words
    return words


def article_words(tokenizer: WordTokenizer, text: str, max_words: int) -> list[str]:
    """An article's first ``max_words`` tokens, ``[<unk>]`` for an article without words (what
    a summarizer reads and a reconstructor rebuilds)."""
    return tokenizer.tokenize(text, max_words=max_words).words or [UNK]


def _ratio(count: int, total: int) -> float | None:
    return count / total if total else None


def code_measures(
    summaries: Sequence[Sequence[str]],
    articles: Sequence[Sequence[str]],
    summary_vocabulary: Collection[str] | None,
) -> CodeMeasures:
    """Repeated, novel and out-of-language token rates and the distinct tokens of an output.

    Args:
        summaries: Each summary's tokens (:func:`summary_words`).
        articles: Each summary's article tokens (:func:`article_words`), in the same order.
        summary_vocabulary: The training summaries' tokens; ``None`` leaves
            ``out_of_language_rate`` out.
    """
    total = repeated = novel = unseen = 0
    seen_anywhere: set[str] = set()
    for words, article in zip(summaries, articles, strict=True):
        source = set(article)
        earlier: set[str] = set()
        for word in words:
            repeated += word in earlier
            earlier.add(word)
            novel += word not in source
            unseen += summary_vocabulary is not None and word not in summary_vocabulary
        total += len(words)
        seen_anywhere |= earlier
    return CodeMeasures(
        repeat_rate=_ratio(repeated, total),
        novel_rate=_ratio(novel, total),
        out_of_language_rate=None if summary_vocabulary is None else _ratio(unseen, total),
        distinct_words=len(seen_anywhere),
        type_token_ratio=_ratio(len(seen_anywhere), total),
    )


@torch.no_grad()
def reconstruction_items(
    reconstructor: Reconstructor,
    tokenizer: WordTokenizer,
    articles: Sequence[Sequence[str]],
    summaries: Sequence[Sequence[str]],
    *,
    batch_size: int = 64,
    summary_limit: int | None = None,
) -> ReconstructionItems:
    """The reconstructor's NLL and token accuracy of each article given its summary's tokens.

    Fed as ``recipes/summary_ae.py`` feeds it: the summary's words in the article's extended
    vocabulary (an out-of-vocabulary word that occurs in the article gets the article's
    extended id, any other one ``<unk>``), the article's extended ids ending with ``</s>`` as
    targets, in batches of ``batch_size`` in the given order.

    Args:
        reconstructor: The reconstructor (run in eval mode, without gradients, on its device).
        tokenizer: The tokenizer of the reconstructor.
        articles: Each article's tokens (:func:`article_words`).
        summaries: Each summary's tokens (:func:`summary_words`), in the same order.
        batch_size: Articles per forward pass.
        summary_limit: ``None``: every summary is read as finished (its tokens and ``</s>``).
            An int (the word limit the summarizers decoded with): a summary of at least this
            many tokens is read without ``</s>``, as a decoder leaves a summary it cut at its
            limit; this reproduces a generator's own output except for a summary that wrote
            ``</s>`` right after its last allowed word, which its text cannot tell apart.
    """
    if len(articles) != len(summaries):
        raise ValueError(
            f"reconstruction_items: {len(articles)} articles but {len(summaries)} summaries"
        )
    device = model_device(reconstructor)
    pad, eos = tokenizer.pad_id, tokenizer.eos_id
    nll, tokens, correct = [], [], []
    with evaluating(reconstructor):
        for i in range(0, len(articles), batch_size):
            arts, sums = articles[i : i + batch_size], summaries[i : i + batch_size]
            src = tokenizer.extend_batch(arts)
            article = tokenizer.extend_targets(arts, src.oov_words).extended_ids.to(device)
            rows = [
                tokenizer.extend_target(words, oov)
                + [eos] * (summary_limit is None or len(words) < summary_limit)
                for words, oov in zip(sums, src.oov_words, strict=True)
            ]
            ids = torch.full((len(rows), max(len(r) for r in rows)), pad, dtype=torch.long)
            for b, row in enumerate(rows):
                ids[b, : len(row)] = torch.tensor(row, dtype=torch.long)
            lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
            summary = Summaries(ids.to(device), lengths.to(device), src.max_oovs)
            n = (article != pad).sum(dim=1)
            nll.append(-reconstructor.log_likelihood(summary, article).double().cpu().numpy())
            accuracy = reconstructor.token_accuracy(summary, article)
            correct.append((accuracy * n).round().double().cpu().numpy())
            tokens.append(n.double().cpu().numpy())
    return ReconstructionItems(*(np.concatenate(x) for x in (nll, tokens, correct)))


# -- checks ------------------------------------------------------------------------------------


def _texts(value: Any, what: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{WHO}: {what} must be a sequence of texts, got {type(value).__name__}")
    for i, text in enumerate(value):
        if not isinstance(text, str):
            raise ValueError(f"{WHO}: {what}[{i}] is a {type(text).__name__}; expected a str")
    return list(value)


def _check(
    articles: Sequence[str],
    references: Sequence[str],
    systems: Mapping[str, Sequence[str]],
    primary: str,
) -> dict[str, list[str]]:
    arts = _texts(articles, "articles")
    if not arts:
        raise ValueError(f"{WHO}: no articles to evaluate on")
    refs = _texts(references, "references")
    if len(refs) != len(arts):
        raise ValueError(f"{WHO}: {len(arts)} articles but {len(refs)} references")
    if not isinstance(systems, Mapping) or not systems:
        raise ValueError(f"{WHO}: systems must map at least one name to its summaries")
    taken = {slug(LEAD_FIXED): LEAD_FIXED, slug(LEAD_MATCHED): LEAD_MATCHED, REFERENCE: REFERENCE}
    out = {}
    for name, texts in systems.items():
        key = slug(name) if isinstance(name, str) else ""
        if not key:
            raise ValueError(f"{WHO}: system name {name!r} needs a letter or digit")
        if key in taken:
            raise ValueError(
                f"{WHO}: system name {name!r} has the metric prefix {key!r} of {taken[key]!r}; "
                "rename it"
            )
        taken[key] = name
        out[name] = _texts(texts, f"systems[{name!r}]")
        if len(out[name]) != len(arts):
            raise ValueError(
                f"{WHO}: system {name!r} has {len(out[name])} summaries for {len(arts)} articles"
            )
    if primary not in out:
        raise ValueError(f"{WHO}: primary {primary!r} is not one of the systems {list(out)}")
    return out


def _positive(**values: int) -> None:
    for name, value in values.items():
        least = 0 if name == "examples" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{WHO}: {name} must be an int >= {least}, got {value!r}")


# -- the evaluation ----------------------------------------------------------------------------


def _interval(iv: BootstrapInterval, transform: Any = float) -> list[float]:
    return [transform(iv.low), transform(iv.high)]


def _percent(value: float | None) -> str | None:
    return None if value is None else format_number(100.0 * value, digits=1)


def evaluate_summaries(
    *,
    articles: Sequence[str],
    references: Sequence[str],
    systems: Mapping[str, Sequence[str]],
    primary: str,
    tokenizer: WordTokenizer,
    language_model: SummaryLanguageModel,
    summary_vocabulary: Collection[str] | None,
    reconstructor: Reconstructor | None,
    max_article_words: int,
    n_boot: int,
    seed: int,
    examples: int,
    batch_size: int = 64,
    summary_limit: int | None = None,
    title: str,
    split: str = "test",
) -> SummaryEvaluation:
    """Score summarizers' outputs on the same test pairs, the same way (module docstring).

    Args:
        articles: The test articles.
        references: Their reference summaries, in the same order.
        systems: Name -> each article's summary (text), in the same order; names must have
            distinct slugs, other than ``lead_8``, ``lead_n`` and ``reference``.
        primary: The system whose mean length sets Lead-N and that the paired differences
            compare with every other row.
        tokenizer: The word tokenizer of the language model and the reconstructor.
        language_model: Trained on the training summaries only (the readability judge).
        summary_vocabulary: The training summaries' tokens (``tokenizer.tokenize`` words), for
            ``out_of_language_rate``; ``None`` leaves it out.
        reconstructor: The summary -> article model; ``None`` leaves the reconstruction
            columns out.
        max_article_words: Article tokens a summarizer reads (novel words and reconstruction).
        n_boot: Bootstrap resamples of every interval (>= 1).
        seed: Seed of the bootstraps (all rows get the same resamples).
        examples: Test items written out in the Examples section (>= 0).
        batch_size: Texts per forward pass of the two models.
        summary_limit: How the reconstructor reads a summary as long as the summarizers' word
            limit (:func:`reconstruction_items`); ``None``: every summary ends with ``</s>``.
        title: The report's heading.
        split: What the pairs are (``"test"``, ``"valid"``), as the report names them.

    Returns:
        :class:`SummaryEvaluation` ``(metrics, markdown)``.

    Raises:
        ValueError: Empty inputs, different lengths, an unknown ``primary``, clashing names,
            bad counts, or models built for another vocabulary (one line).
    """
    outputs = _check(articles, references, systems, primary)
    _positive(
        max_article_words=max_article_words, n_boot=n_boot, examples=examples, batch_size=batch_size
    )
    if summary_limit is not None:
        _positive(summary_limit=summary_limit)
    if summary_vocabulary is not None and (
        isinstance(summary_vocabulary, str) or len(summary_vocabulary) == 0
    ):
        raise ValueError(f"{WHO}: summary_vocabulary must be a non-empty set of words or None")
    for model, what in ((language_model, "language model"), (reconstructor, "reconstructor")):
        if model is not None and model.vocab_size != tokenizer.vocab_size:
            raise ValueError(
                f"{WHO}: the {what} has {model.vocab_size} words but the tokenizer "
                f"{tokenizer.vocab_size}; pass the tokenizer it was trained with"
            )
    articles, references = list(articles), list(references)
    n = len(articles)
    boot = {"n_boot": n_boot, "seed": seed}

    # ROUGE rows: the baselines, then the systems in the given order
    primary_rouge = corpus_rouge(references, outputs[primary], **boot)
    texts: dict[str, list[str]] = {
        LEAD_FIXED: [lead_n(a, LEAD_WORDS) for a in articles],
        LEAD_MATCHED: lead_baseline(articles, primary_rouge.mean_words),
        **outputs,
    }
    rouge: dict[str, CorpusRouge] = {
        name: primary_rouge if name == primary else corpus_rouge(references, hyps, **boot)
        for name, hyps in texts.items()
    }
    differences = {
        other: paired_rouge_difference(references, texts[other], texts[primary], **boot)
        for other in texts
        if other != primary
    }

    # the readability, private-code and reconstruction rows (the references first)
    rows = {REFERENCE: references, **texts}
    art_words = [article_words(tokenizer, a, max_article_words) for a in articles]
    measures: dict[str, dict[str, Any]] = {}
    for name, summaries in rows.items():
        words = [summary_words(tokenizer, s) for s in summaries]
        lm = sequence_nll(language_model, tokenizer, words, batch_size=batch_size)
        ppl = bootstrap_ratio(lm.nll, lm.tokens, who=WHO, **boot)
        m: dict[str, Any] = {
            "mean_words": float(np.mean([count_words(s) for s in summaries])),
            "perplexity": math.exp(ppl.estimate),
            "perplexity_interval": _interval(ppl, math.exp),
            **code_measures(words, art_words, summary_vocabulary)._asdict(),
        }
        if summary_vocabulary is None:
            del m["out_of_language_rate"]
        if reconstructor is not None:
            rec = reconstruction_items(
                reconstructor,
                tokenizer,
                art_words,
                words,
                batch_size=batch_size,
                summary_limit=summary_limit,
            )
            rec_iv = bootstrap_ratio(rec.nll, rec.tokens, who=WHO, **boot)
            m["reconstruction_nll"] = rec_iv.estimate
            m["reconstruction_nll_interval"] = _interval(rec_iv)
            m["reconstruction_token_accuracy"] = float(rec.correct.sum() / rec.tokens.sum())
        measures[name] = m

    metrics = _metrics(rouge, differences, measures, primary, n)
    markdown = _markdown(
        title=title,
        split=split,
        n=n,
        n_boot=n_boot,
        primary=primary,
        rouge=rouge,
        differences=differences,
        measures=measures,
        shown=[
            (articles[i], references[i], {k: v[i] for k, v in texts.items()})
            for i in range(min(examples, n))
        ],
    )
    return SummaryEvaluation(metrics, markdown)


def _metrics(
    rouge: Mapping[str, CorpusRouge],
    differences: Mapping[str, Any],
    measures: Mapping[str, Mapping[str, Any]],
    primary: str,
    n: int,
) -> dict[str, Any]:
    metrics: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if key in metrics:
            raise ValueError(f"{WHO}: two results would share the metric key {key!r}; rename")
        metrics[key] = value

    for name, result in rouge.items():
        for variant in ("rouge1", "rouge2", "rouge_l"):
            iv = getattr(result, variant)
            put(f"{slug(name)}_{variant}", iv.estimate)
            put(f"{slug(name)}_{variant}_interval", _interval(iv))
    for name, m in measures.items():
        for key, value in m.items():
            put(f"{slug(name)}_{key}", value)
    for other, diff in differences.items():
        for variant in ("rouge1", "rouge2", "rouge_l"):
            iv = getattr(diff, variant)
            put(f"{slug(primary)}_minus_{slug(other)}_{variant}", iv.estimate)
            put(f"{slug(primary)}_minus_{slug(other)}_{variant}_interval", _interval(iv))
    put("n_test", n)
    return metrics


def _markdown(
    *,
    title: str,
    split: str,
    n: int,
    n_boot: int,
    primary: str,
    rouge: Mapping[str, CorpusRouge],
    differences: Mapping[str, Any],
    measures: Mapping[str, Mapping[str, Any]],
    shown: Sequence[tuple[str, str, Mapping[str, str]]],
) -> str:
    first = next(iter(measures.values()))
    columns = ["system", "mean words", "perplexity [95%]", "repeated %", "novel %"]
    if "out_of_language_rate" in first:
        columns.append("out-of-language %")
    columns += ["distinct words", "type/token"]
    if "reconstruction_nll" in first:
        columns += ["rec. NLL (nats/token) [95%]", "rec. token acc. %"]
    rows = []
    for name, m in measures.items():
        low, high = m["perplexity_interval"]
        row: list[Any] = [
            name,
            format_number(m["mean_words"], digits=1),
            format_estimate(m["perplexity"], None, low, high, digits=1),
            _percent(m["repeat_rate"]),
            _percent(m["novel_rate"]),
        ]
        if "out_of_language_rate" in m:
            row.append(_percent(m["out_of_language_rate"]))
        row += [m["distinct_words"], m["type_token_ratio"]]
        if "reconstruction_nll" in m:
            low, high = m["reconstruction_nll_interval"]
            row += [
                format_estimate(m["reconstruction_nll"], None, low, high, digits=3),
                _percent(m["reconstruction_token_accuracy"]),
            ]
        rows.append(row)
    diff_rows = [
        [
            f"{primary} - {other}",
            *(
                format_estimate(*(100.0 * v for v in getattr(diff, variant)), digits=1, signed=True)
                for variant in ("rouge1", "rouge2", "rouge_l")
            ),
        ]
        for other, diff in differences.items()
    ]
    lead_words = rouge[LEAD_MATCHED].mean_words
    lines = [
        f"# {title}",
        "",
        f"{n} {split} pairs. ROUGE F1 in %: mean ± bootstrap s.e. [95% interval], {n_boot} "
        f"resamples. {LEAD_FIXED}: each article's first {LEAD_WORDS} words; {LEAD_MATCHED}: its "
        f"first words at {primary}'s mean length ({lead_words:.1f} words).",
        "",
        "## ROUGE",
        "",
        rouge_table(rouge, percent=True, digits=1),
        "",
        "## Readability, private code and reconstruction",
        "",
        markdown_table(columns, rows, digits=3),
        "",
        "Perplexity: under a language model trained on the training summaries only. "
        "Repeated: tokens equal to an earlier token of the same summary. Novel: tokens absent "
        "from the article. Out-of-language: tokens never seen in the training summaries. "
        "Distinct words and type/token: over the whole output. Rec.: the reconstructor "
        "rebuilding the article from the summary.",
        "",
        f"## Paired differences: {primary} minus each other system",
        "",
        "ROUGE F1 in % points, paired bootstrap s.e. [95% interval]; positive: "
        f"{primary} scores higher.",
        "",
        markdown_table(["comparison", "ΔR-1", "ΔR-2", "ΔR-L"], diff_rows),
    ]
    if shown:
        lines += ["", "## Examples"]
    for i, (article, reference, summaries) in enumerate(shown, start=1):
        lines += ["", f"**Article {i}.** {article}", "", f"- reference: {reference}"]
        lines += [f"- {name}: {text}" for name, text in summaries.items()]
    return "\n".join(lines) + "\n"
