"""Gold trees: the labelled n-ary tree type, bracketed formats, and Penn-Treebank preprocessing.

A :class:`Tree` is a label (``None`` when unlabeled) and children, each a word (a ``str``) or a
subtree. A *preterminal* is a node whose only child is a word; its label is the word's
part-of-speech tag. Every other node is a constituent and covers a span of words
``(start, end)``, end exclusive (:meth:`Tree.spans`); :meth:`Tree.bracketing` gives the spans
to :mod:`seqae.metrics.parsing`.

Two bracketed formats (:func:`parse_tree`, :meth:`Tree.to_string`):

- ``"penn"``: the Penn Treebank's, ``(S (NP (DT the) (NN cat)) (VP (VBD sat)))``. The first
  token after ``(`` is the node's label unless it is another ``(``, so the Treebank's
  unlabeled root ``( (S ...) )`` reads as a node with label ``None``. Words may also stand
  directly under a constituent, ``(NP the cat)``.
- ``"unlabeled"``: only brackets and words, ``((the cat) sat)``.

A tree may span several lines (the Treebank's ``.mrg`` files); :func:`iter_trees` reads every
tree of a file and names the line of any error. Words and labels cannot hold spaces or
brackets: the Treebank writes ``(`` and ``)`` as ``-LRB-`` and ``-RRB-``.

Preprocessing as unsupervised parsing does it for the Penn Treebank (Kim et al. 2019, after
PRPN and ON-LSTM; :func:`preprocess_tree`): strip function tags and indices from labels
(``NP-SBJ-1`` -> ``NP``, ``PP-LOC=2`` -> ``PP``), drop empty elements (words tagged
``-NONE-``: traces ``*T*-1``, null complementizers ``0``), optionally drop punctuation (words
tagged with one of :data:`PUNCTUATION_TAGS`, or untagged words made only of punctuation) and
lowercase the words; constituents left without words are removed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from seqae.errors import UsageError
from seqae.metrics.parsing import Bracketing

__all__ = [
    "EMPTY_TAG",
    "PUNCTUATION_TAGS",
    "STYLES",
    "Tree",
    "TreeDataError",
    "is_punctuation",
    "iter_trees",
    "parse_tree",
    "preprocess_tree",
    "strip_function_tag",
]

Style = Literal["penn", "unlabeled"]
#: The bracketed formats.
STYLES: tuple[str, ...] = ("penn", "unlabeled")
#: The Penn Treebank's tag of empty elements (traces, null elements).
EMPTY_TAG = "-NONE-"
#: Part-of-speech tags of punctuation and currency symbols, which unsupervised parsing drops.
PUNCTUATION_TAGS: frozenset[str] = frozenset(
    {".", ",", ":", "``", "''", "-LRB-", "-RRB-", "-LCB-", "-RCB-", "#", "$"}
)
_BRACKET_WORDS = frozenset({"-LRB-", "-RRB-", "-LCB-", "-RCB-", "-LSB-", "-RSB-"})
_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_FUNCTION_TAG = re.compile(r"[-=]")
_BAD_SYMBOL = re.compile(r"[\s()]")


class TreeDataError(UsageError, ValueError):
    """A tree or a tree/sentence file is not what it should be (one line naming the file, the
    line and the problem)."""


@dataclass(frozen=True)
class Tree:
    """A node of a (possibly labelled, possibly n-ary) tree.

    Attributes:
        label: The constituent label or part-of-speech tag; ``None`` when unlabeled.
        children: Words (``str``) and subtrees, left to right; at least one.
    """

    label: str | None
    children: tuple[Tree | str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.children, tuple):
            object.__setattr__(self, "children", tuple(self.children))
        if not self.children:
            raise ValueError(f"Tree: the node {self.label!r} has no children")
        for child in self.children:
            if not isinstance(child, Tree | str) or child == "":
                raise ValueError(f"Tree: a child must be a subtree or a word, got {child!r}")

    @property
    def is_preterminal(self) -> bool:
        """True when the node's only child is a word (its label is then a POS tag)."""
        return len(self.children) == 1 and isinstance(self.children[0], str)

    def leaves(self) -> list[str]:
        """The words, left to right."""
        words: list[str] = []
        for child in self.children:
            if isinstance(child, str):
                words.append(child)
            else:
                words.extend(child.leaves())
        return words

    @cached_property
    def length(self) -> int:
        """Number of words."""
        return len(self.leaves())

    def tags(self) -> list[str | None]:
        """Each word's part-of-speech tag: its preterminal's label, ``None`` for a word that
        stands directly under a constituent."""
        tags: list[str | None] = []
        for child in self.children:
            if isinstance(child, str):
                tags.append(self.label if self.is_preterminal else None)
            else:
                tags.extend(child.tags())
        return tags

    def spans(self) -> list[tuple[int, int, str | None]]:
        """``(start, end, label)`` of every constituent (every node but preterminals), in
        pre-order; a unary chain gives the same span once per node."""
        out: list[tuple[int, int, str | None]] = []
        self._spans(0, out)
        return out

    def _spans(self, start: int, out: list[tuple[int, int, str | None]]) -> int:
        if self.is_preterminal:
            return start + 1
        index = len(out)
        out.append((start, start, self.label))  # end filled in below
        end = start
        for child in self.children:
            end = end + 1 if isinstance(child, str) else child._spans(end, out)
        out[index] = (start, end, self.label)
        return end

    def bracketing(self) -> Bracketing:
        """The tree's constituents for :mod:`seqae.metrics.parsing`."""
        return Bracketing(self.length, tuple(self.spans()))

    def height(self) -> int:
        """Nodes on the longest path from this node down to a word (a preterminal has 1)."""
        return 1 + max((0 if isinstance(c, str) else c.height()) for c in self.children)

    # -- writing ---------------------------------------------------------------------------

    def to_string(self, *, style: Style | str = "penn") -> str:
        """The tree on one line in a bracketed format (see the module docstring).

        Args:
            style: ``"penn"`` (labels and tags) or ``"unlabeled"`` (brackets and words only;
                preterminals become bare words).

        Raises:
            ValueError: A word or label holds a space or a bracket, an unknown style, or (in
                ``"penn"``) a node without a label whose first child is a word, which that
                format cannot tell from a label.
        """
        if style not in STYLES:
            raise ValueError(f"Tree.to_string: unknown style {style!r}; expected one of {STYLES}")
        parts: list[str] = []
        self._write(parts, style == "penn")
        return "".join(parts)

    def __str__(self) -> str:
        return self.to_string(style="penn" if self.label is not None else "unlabeled")

    def _write(self, parts: list[str], labels: bool) -> None:
        if not labels and self.is_preterminal:
            parts.append("(" + _symbol(self.children[0], "word") + ")")  # type: ignore[arg-type]
            return
        parts.append("(")
        first = True
        if labels:
            if self.label is not None:
                parts.append(_symbol(self.label, "label"))
                first = False
            elif isinstance(self.children[0], str):
                raise ValueError(
                    f"Tree.to_string: a node without a label starts with the word "
                    f"{self.children[0]!r}, which the penn style would read as a label; write "
                    "it with style='unlabeled' or give the node a label"
                )
        for child in self.children:
            if not first:
                parts.append(" ")
            first = False
            if isinstance(child, str):
                parts.append(_symbol(child, "word"))
            elif not labels and child.is_preterminal:
                parts.append(_symbol(child.children[0], "word"))  # type: ignore[arg-type]
            else:
                child._write(parts, labels)
        parts.append(")")

    # -- building --------------------------------------------------------------------------

    @classmethod
    def from_spans(
        cls,
        words: Sequence[str],
        spans: Iterable[Sequence[int]],
        *,
        tags: Sequence[str] | None = None,
        label: str | None = None,
    ) -> Tree:
        """The tree whose constituents are ``spans`` (e.g. a parser's prediction).

        Args:
            words: The sentence.
            spans: ``(start, end)`` pairs (extra items, such as labels, are ignored), end
                exclusive; the whole sentence is added when missing, repeats count once.
            tags: A part-of-speech tag per word (the words become preterminals), or ``None``
                for bare words.
            label: The label of every constituent.

        Raises:
            ValueError: A span outside the sentence, crossing spans, or tags of another length.
        """
        if isinstance(words, str) or not words:
            raise ValueError("Tree.from_spans: words must be a non-empty sequence of words")
        n = len(words)
        if tags is not None and len(tags) != n:
            raise ValueError(f"Tree.from_spans: {len(tags)} tags for {n} words")
        unique = {(int(s[0]), int(s[1])) for s in spans} | {(0, n)}
        for i, j in unique:
            if not 0 <= i < j <= n:
                raise ValueError(f"Tree.from_spans: span ({i}, {j}) is outside 0..{n}")
        order = sorted(unique, key=lambda s: (s[0], -s[1]))
        leaves: list[Tree | str] = (
            list(words)
            if tags is None
            else [cls(t, (w,)) for w, t in zip(words, tags, strict=True)]
        )
        position = 1  # order[0] is (0, n)

        def build(i: int, j: int) -> Tree:
            nonlocal position
            children: list[Tree | str] = []
            k = i
            while k < j:
                if position < len(order) and order[position][0] == k:
                    a, b = order[position]
                    if b > j:
                        raise ValueError(f"Tree.from_spans: spans ({i}, {j}) and ({a}, {b}) cross")
                    position += 1
                    children.append(build(a, b))
                    k = b
                else:
                    children.append(leaves[k])
                    k += 1
            return cls(label, tuple(children))

        return build(0, n)


def _symbol(text: str, what: str) -> str:
    if not text or _BAD_SYMBOL.search(text):
        raise ValueError(
            f"Tree.to_string: the {what} {text!r} is empty or holds a space or a bracket; "
            "write brackets as -LRB- and -RRB- as the Penn Treebank does"
        )
    return text


# --------------------------------------------------------------------------------------------
# Reading


class _Node:
    __slots__ = ("children", "column", "label", "line", "labelled")

    def __init__(self, line: int, column: int) -> None:
        self.label: str | None = None
        self.labelled = False  # the label slot has been decided
        self.children: list[Tree | str] = []
        self.line = line
        self.column = column


def iter_trees(
    lines: Sequence[str], *, style: Style | str = "penn", where: str = "trees"
) -> Iterator[tuple[int, Tree]]:
    """Every tree in ``lines``, with the number (from 1) of the line it starts on.

    Trees may span lines and share them; blank lines and spaces between trees are ignored.

    Args:
        lines: The text, one string per line (no line ends).
        style: ``"penn"`` or ``"unlabeled"`` (module docstring).
        where: How to name the text in errors (``"trees: data/test_trees.txt"``).

    Raises:
        TreeDataError: Unbalanced brackets (a ``)`` that closes nothing, a tree not closed at
            the end), empty brackets ``()``, a labelled node without children, or a word
            outside any brackets. The message names the line.
    """
    if style not in STYLES:
        raise TreeDataError(f"{where}: unknown tree style {style!r}; expected one of {STYLES}")
    penn = style == "penn"
    example = "(S (NP (DT the) (NN cat)) (VP (VBD sat)))" if penn else "((the cat) sat)"
    stack: list[_Node] = []
    for number, text in enumerate(lines, start=1):
        for match in _TOKEN.finditer(text):
            token = match.group()
            at = f"{where} line {number}"
            if token == "(":
                if stack and penn and not stack[-1].labelled:
                    stack[-1].labelled = True  # "((": the outer node has no label
                stack.append(_Node(number, match.start() + 1))
            elif token == ")":
                if not stack:
                    raise TreeDataError(
                        f"{at}: a ')' at column {match.start() + 1} closes no '('; expected "
                        "balanced brackets"
                    )
                node = stack.pop()
                if not node.children:
                    what = f"({node.label})" if node.label is not None else "()"
                    raise TreeDataError(
                        f"{where} line {node.line}: {what} at column {node.column} has no "
                        "words; expected every bracket to hold at least one word"
                    )
                tree = Tree(node.label, tuple(node.children))
                if stack:
                    stack[-1].children.append(tree)
                else:
                    yield node.line, tree
            elif not stack:
                raise TreeDataError(
                    f"{at}: {token!r} at column {match.start() + 1} is outside any tree; "
                    f"expected bracketed trees such as {example}"
                )
            elif penn and not stack[-1].labelled:
                stack[-1].label, stack[-1].labelled = token, True
            else:
                stack[-1].labelled = True
                stack[-1].children.append(token)
    if stack:
        raise TreeDataError(
            f"{where} line {stack[0].line}: the tree that starts here is not closed "
            f"({len(stack)} ')' missing at the end); expected balanced brackets"
        )


def parse_tree(text: str, *, style: Style | str = "penn") -> Tree:
    """The one tree in ``text`` (which may span lines).

    Args:
        text: A bracketed tree.
        style: ``"penn"`` or ``"unlabeled"`` (module docstring).

    Raises:
        TreeDataError: No tree, more than one, or a malformed one (see :func:`iter_trees`).
    """
    trees = [tree for _, tree in iter_trees(text.split("\n"), style=style, where="tree")]
    if len(trees) != 1:
        raise TreeDataError(f"tree: expected one bracketed tree, found {len(trees)} in {text!r}")
    return trees[0]


# --------------------------------------------------------------------------------------------
# Preprocessing


def strip_function_tag(label: str) -> str:
    """``label`` without its function tags and indices (``NP-SBJ-1`` -> ``NP``, ``S=2`` ->
    ``S``); labels that start with ``-`` (``-NONE-``, ``-LRB-``) are kept whole."""
    if label.startswith("-"):
        return label
    return _FUNCTION_TAG.split(label, maxsplit=1)[0] or label


def is_punctuation(
    word: str, tag: str | None = None, *, tags: Iterable[str] = PUNCTUATION_TAGS
) -> bool:
    """True for a punctuation word: its tag is one of ``tags``, or (untagged) it is a bracket
    word (``-LRB-``) or made only of punctuation and currency characters."""
    if tag is not None:
        return tag in tags
    if word in _BRACKET_WORDS:
        return True
    return all(
        unicodedata.category(ch)[0] == "P" or unicodedata.category(ch) == "Sc" for ch in word
    )


def preprocess_tree(
    tree: Tree,
    *,
    lowercase: bool = False,
    drop_punctuation: bool = False,
    drop_empty: bool = True,
    strip_function_tags: bool = True,
    punctuation_tags: Iterable[str] = PUNCTUATION_TAGS,
) -> Tree | None:
    """``tree`` cleaned as the module docstring says; ``None`` when no word is left.

    Args:
        tree: The tree.
        lowercase: Lowercase every word.
        drop_punctuation: Drop punctuation words (:func:`is_punctuation`).
        drop_empty: Drop empty elements (words tagged :data:`EMPTY_TAG`).
        strip_function_tags: Reduce every label to its category (:func:`strip_function_tag`).
        punctuation_tags: The tags that mark punctuation.
    """
    punct = frozenset(punctuation_tags)

    def clean(node: Tree) -> Tree | None:
        label = node.label
        if node.is_preterminal:
            word = node.children[0]
            assert isinstance(word, str)
            if drop_empty and label == EMPTY_TAG:
                return None
            if drop_punctuation and is_punctuation(word, label, tags=punct):
                return None
        if label is not None and strip_function_tags:
            label = strip_function_tag(label)
        children: list[Tree | str] = []
        for child in node.children:
            if isinstance(child, str):
                if not node.is_preterminal and drop_punctuation and is_punctuation(child, None):
                    continue
                children.append(child.lower() if lowercase else child)
            elif (kept := clean(child)) is not None:
                children.append(kept)
        return Tree(label, tuple(children)) if children else None

    return clean(tree)
