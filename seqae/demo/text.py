"""The text tab: the summary of an article by each trained summarizer, side by side.

Every summarizer folder found (``seqae run summary_ae`` and its ablations, and ``seqae run
summary_ppo``'s policies) summarizes the pasted article, greedily, as ``seqae summarize``
does (:func:`seqae.text.summarize.summarize_texts`).
Each row also gives two of the evaluation's private-code measures for that one summary
(:func:`seqae.text.evaluation.code_measures`): the share of repeated words and of words not in
the article. The no-discriminator ablation beside the full model shows what the discriminator
is for: without it the summary drifts into a private code between writer and reconstructor.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import gradio as gr

from seqae.demo.cache import ModelCache
from seqae.demo.discovery import FoundModel
from seqae.demo.errors import DemoInputError, shown_in_page
from seqae.demo.limits import MAX_ARTICLE_CHARS
from seqae.text.evaluation import article_words, code_measures, summary_words
from seqae.text.policy import SummaryPolicy
from seqae.text.summarize import Summarizer, load_summarizer, summarize_texts

__all__ = ["COLUMNS", "TextTab", "describe", "example_articles"]

#: The columns of the result table.
COLUMNS = ["model", "training", "summary", "words", "repeated", "not in the article"]
#: Example articles offered from a run's test pairs.
N_EXAMPLES = 3


def describe(found: FoundModel) -> str:
    """How a summarizer was trained, from its run's config: the estimator, and whether the
    discriminator's rewards were used ("" when the run's config is not there)."""
    if found.model_type == SummaryPolicy.model_type:  # summary_ppo's policy
        return f"PPO, {found.run_setting('env.actions', 'words')}"
    estimator = found.run_setting("train.estimator")
    if estimator is None:
        return ""
    weight = found.run_setting("adversary.weight", 1.0)
    return f"{estimator}, " + ("no discriminator" if not weight else "with discriminator")


def example_articles(models: Sequence[FoundModel], n: int = N_EXAMPLES) -> list[str]:
    """The first ``n`` test articles of the first run whose corpus (``data.corpus``) has test
    pairs (``test.jsonl``); none when no run's has."""
    for found in models:
        corpus = found.run_path("data.corpus", holding="test.jsonl")
        if corpus is None:
            continue
        path = corpus / "test.jsonl"
        articles: list[str] = []
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    article = json.loads(line).get("article")
                except (json.JSONDecodeError, AttributeError):
                    continue
                if isinstance(article, str) and article.strip():
                    articles.append(article)
                if len(articles) == n:
                    return articles
        if articles:
            return articles
    return []


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.0f}%"


class TextTab:
    """The text tab's handlers and layout.

    Args:
        models: The found summarizer folders (kind ``summarizer``).
        cache: The app's model cache.
    """

    def __init__(self, models: Sequence[FoundModel], cache: ModelCache) -> None:
        # the full models first, the no-discriminator ablations after them
        self.models = sorted(
            models, key=lambda m: (not m.run_setting("adversary.weight", 1.0), m.name)
        )
        self.cache = cache

    def summarizer(self, found: FoundModel) -> Summarizer:
        """The summarizer folder, loaded once (``seqae summarize``'s loader)."""
        return self.cache.get(("summarizer", found.path), lambda: load_summarizer(found.path))

    def summaries(self, article: str | None) -> tuple[list[list[Any]], str | None]:
        """One row of :data:`COLUMNS` per summarizer: its greedy summary of ``article`` and the
        summary's length and private-code measures; and a note when the article was cut.

        Raises:
            DemoInputError: no article, or one longer than :data:`MAX_ARTICLE_CHARS`.
        """
        text = (article or "").strip()
        if not text:
            raise DemoInputError("paste an article first")
        if len(text) > MAX_ARTICLE_CHARS:
            raise DemoInputError(
                f"the article has {len(text):,} characters; at most {MAX_ARTICLE_CHARS:,} are "
                "accepted"
            )
        rows: list[list[Any]] = []
        truncated: list[str] = []
        for found in self.models:
            model = self.summarizer(found)
            limit = model.max_article_words
            (summary,), n_cut = summarize_texts(
                model, [text], max_words=model.max_words, max_article_words=limit
            )
            if n_cut:
                truncated.append(f"{found.name} read its first {limit} words")
            words = summary_words(model.tokenizer, summary)
            measures = code_measures([words], [article_words(model.tokenizer, text, limit)], None)
            rows.append(
                [
                    found.name,
                    describe(found),
                    summary,
                    len(words),
                    _percent(measures.repeat_rate),
                    _percent(measures.novel_rate),
                ]
            )
        note = "The article is long: " + "; ".join(truncated) + "." if truncated else None
        return rows, note

    def summarize(self, article: str | None) -> list[list[Any]]:
        """The event handler: :meth:`summaries`, its note shown in the page."""
        rows, note = self.summaries(article)
        if note:
            gr.Info(note)
        return rows

    def build(self) -> None:
        """Build the tab's content inside the current Blocks context."""
        gr.Markdown(
            "Paste an article (a paragraph of English; at most "
            f"{MAX_ARTICLE_CHARS:,} characters) and get the summary of every trained "
            "summarizer found, greedy decoding, each at the length its run was trained for. "
            "*repeated*: the share of the summary's words that repeat an earlier one; *not in "
            "the article*: the share absent from it. Without the discriminator "
            "(`summary_ae_nodisc`) the summary drifts into a private code that only the "
            "reconstructor reads: more repeats, words from elsewhere."
        )
        examples = example_articles(self.models)
        article = gr.Textbox(
            value=examples[0] if examples else "",
            lines=6,
            max_length=MAX_ARTICLE_CHARS,
            label="article",
            elem_id="text-article",
        )
        if len(examples) > 1:
            gr.Examples([[e] for e in examples], inputs=article, label="test articles")
        run = gr.Button("Summarize", variant="primary", elem_id="text-summarize")
        table = gr.Dataframe(
            self.summaries(examples[0])[0] if examples else None,
            headers=COLUMNS,
            interactive=False,
            wrap=True,
            label="summaries",
            elem_id="text-summaries",
        )
        handler = shown_in_page(self.summarize)
        run.click(handler, article, table)
        article.submit(handler, article, table)
