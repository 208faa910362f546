"""The tree tab: type a sentence, see the tree a trained tree parser gives it, drawn.

The parser is a ``seqae run tree_ae`` model folder (URNNG or the compound PCFG), loaded and run
as ``seqae parse`` does (:func:`seqae.tree.parse.load_tree_parser`,
:func:`~seqae.tree.parse.parse_spans`: the minimum-Bayes-risk tree). Words are split at white
space; words the model never saw are read as ``<unk>``. A word holding a bracket is parsed as
``-LRB-`` / ``-RRB-`` (the Penn Treebank's spelling) and drawn as typed.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import gradio as gr

from seqae.demo.cache import ModelCache
from seqae.demo.discovery import FoundModel
from seqae.demo.errors import DemoInputError, shown_in_page
from seqae.demo.limits import MAX_SENTENCE_WORDS
from seqae.tree.parse import TreeParser, load_tree_parser, parse_spans
from seqae.tree.trees import Span, check_tree, spans_to_brackets

__all__ = ["TreeTab", "example_sentences", "tree_svg"]

#: Example sentences offered from a run's test sentences.
N_EXAMPLES = 3
#: Drawing sizes in pixels: horizontal room per word, vertical room per tree level, margin.
_WORD_WIDTH, _LEVEL_HEIGHT, _MARGIN = 78, 34, 14
_FALLBACK_EXAMPLE = "the dog saw a cat in the park"


def tree_svg(words: Sequence[str], spans: Sequence[Span]) -> str:
    """An SVG drawing of a binary tree: the words along the bottom, each constituent a dot
    above its two children, joined by lines.

    Args:
        words: The sentence's words (drawn as given, HTML-escaped).
        spans: The tree's inclusive spans, leaves included (:mod:`seqae.tree.trees`); for one
            word, ``[(0, 0)]``.
    """
    ordered = check_tree(spans, len(words))
    x: dict[Span, float] = {(k, k): float(k) for k in range(len(words))}
    level: dict[Span, int] = {(k, k): 0 for k in range(len(words))}
    lines: list[tuple[Span, Span]] = []
    for i, j in sorted((s for s in ordered if s[1] > s[0]), key=lambda s: s[1] - s[0]):
        left = next(s for s in ordered if s[0] == i and s[1] < j)  # the widest, by the order
        right = (left[1] + 1, j)
        x[(i, j)] = (x[left] + x[right]) / 2
        level[(i, j)] = 1 + max(level[left], level[right])
        lines += [((i, j), left), ((i, j), right)]
    top = max(level.values())
    width = 2 * _MARGIN + _WORD_WIDTH * len(words)
    height = 2 * _MARGIN + _LEVEL_HEIGHT * (top + 1)

    def point(span: Span) -> tuple[float, float]:
        return (
            _MARGIN + _WORD_WIDTH * (x[span] + 0.5),
            _MARGIN + _LEVEL_HEIGHT * (top - level[span]) + 6,
        )

    parts = [  # drawn at its size, shrunk to the page's width when wider
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 12}" '
        f'viewBox="0 0 {width} {height + 12}" style="max-width: 100%; height: auto" '
        'role="img" aria-label="parse tree">'
    ]
    for parent, child in lines:
        (x1, y1), (x2, y2) = point(parent), point(child)
        parts.append(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            'stroke="#6b7280" stroke-width="1.5"/>'
        )
    for span in ordered:
        cx, cy = point(span)
        if span[0] == span[1]:
            parts.append(
                f'<text x="{cx:.1f}" y="{cy + 12:.1f}" text-anchor="middle" font-size="14" '
                f'font-family="sans-serif" fill="currentColor">{html.escape(words[span[0]])}</text>'
            )
        else:
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="#f97316"/>')
    parts.append("</svg>")
    return "".join(parts)


def example_sentences(models: Sequence[FoundModel], n: int = N_EXAMPLES) -> list[str]:
    """The first ``n`` test sentences of 4 to 12 words of the first run whose corpus
    (``data.corpus``) has a ``test.txt``, else one fixed example."""
    for found in models:
        corpus = found.run_path("data.corpus", holding="test.txt")
        if corpus is None:
            continue
        with (corpus / "test.txt").open(encoding="utf-8", errors="replace") as lines:
            sentences = [line.strip() for line, _ in zip(lines, range(200), strict=False)]
        sentences = [s for s in sentences if 4 <= len(s.split()) <= 12][:n]
        if sentences:
            return sentences
    return [_FALLBACK_EXAMPLE]


def _as_token(word: str) -> str:
    """A word as the model reads it: brackets in Penn Treebank spelling."""
    return word.replace("(", "-LRB-").replace(")", "-RRB-")


class TreeTab:
    """The tree tab's handlers and layout.

    Args:
        models: The found tree parsers (kind ``tree``).
        cache: The app's model cache.
    """

    def __init__(self, models: Sequence[FoundModel], cache: ModelCache) -> None:
        self.models = {m.name: m for m in models}
        self.cache = cache

    def parser(self, name: str) -> TreeParser:
        """The tree parser called ``name``, loaded once (``seqae parse``'s loader)."""
        if name not in self.models:
            raise DemoInputError(
                f"no tree parser {name!r} here; choose one of {', '.join(self.models)}"
            )
        path = self.models[name].path
        return self.cache.get(("tree_parser", path), lambda: load_tree_parser(path))

    def tree(self, name: str, sentence: str | None) -> tuple[str, str, str | None]:
        """``(svg drawing, bracketed tree, note)`` of a sentence; the note says when it is
        longer than the sentences the model trained on.

        Raises:
            DemoInputError: no words, or more than :data:`MAX_SENTENCE_WORDS`.
        """
        words = (sentence or "").split()
        if not words:
            raise DemoInputError("type a sentence first (words separated by spaces)")
        if len(words) > MAX_SENTENCE_WORDS:
            raise DemoInputError(
                f"the sentence has {len(words)} words; at most {MAX_SENTENCE_WORDS} are parsed here"
            )
        parser = self.parser(name)
        tokens = [_as_token(w) for w in words]
        if len(words) == 1:
            spans: list[Span] = [(0, 0)]
        else:
            (spans,) = parse_spans(parser.model, parser.vocab, [tokens], lowercase=parser.lowercase)
        note = None
        if parser.max_length is not None and len(words) > parser.max_length:
            note = (
                f"{len(words)} words: longer than the {parser.max_length} the model trained on; "
                "parsed anyway"
            )
        return tree_svg(words, spans), spans_to_brackets(spans, tokens), note

    def parse(self, name: str, sentence: str | None) -> list[str]:
        """The event handler: :meth:`tree`'s drawing and brackets, its note shown in the page."""
        drawing, brackets, note = self.tree(name, sentence)
        if note:
            gr.Info(note)
        return [drawing, brackets]

    def build(self) -> None:
        """Build the tab's content inside the current Blocks context."""
        names = sorted(self.models)
        examples = example_sentences([self.models[n] for n in names])
        gr.Markdown(
            "Type a sentence (words separated by spaces; at most "
            f"{MAX_SENTENCE_WORDS} words) and see the tree the model parses it into: an "
            "unlabeled binary tree it learned from raw sentences alone. Words it never saw are "
            "read as `<unk>`."
        )
        with gr.Row():
            model = gr.Dropdown(names, value=names[0], label="model")
            sentence = gr.Textbox(
                value=examples[0], label="sentence", elem_id="tree-sentence", scale=3
            )
        if len(examples) > 1:
            gr.Examples([[e] for e in examples], inputs=sentence, label="test sentences")
        run = gr.Button("Parse", variant="primary", elem_id="tree-parse")
        first = self.tree(names[0], examples[0])
        drawing = gr.HTML(first[0], elem_id="tree-drawing")
        brackets = gr.Textbox(
            first[1], label="bracketed", interactive=False, elem_id="tree-brackets"
        )
        handler = shown_in_page(self.parse)
        outputs: list[Any] = [drawing, brackets]
        run.click(handler, [model, sentence], outputs)
        sentence.submit(handler, [model, sentence], outputs)
        model.change(handler, [model, sentence], outputs)
