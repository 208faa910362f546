"""Unlabeled binary trees in the forms the tree plugin passes around, and conversions.

* **span set**: a list of inclusive word spans ``(i, j)``, ``0 <= i <= j < n``; a binary tree
  over ``n`` words has ``2n - 1`` of them: the ``n`` leaves ``(i, i)``, the root ``(0, n - 1)``
  and ``n - 2`` other constituents, nested or disjoint, each constituent split in exactly two.
* **span indicators**: a ``(B, N, N)`` float tensor, ``1`` at ``[b, i, j]`` for each span of
  sentence ``b`` (leaves included), ``0`` elsewhere (lower triangle and padding too). This is
  what :class:`seqae.tree.crf.TreeCRF` samples and scores.
* **brackets**: ``"((the cat) sat)"``: a leaf is a word, a constituent ``"(left right)"``.
* **actions**: the SHIFT/REDUCE sequence an RNNG decoder consumes (URNNG, arXiv 1904.03746):
  ``2n - 1`` actions, SHIFT (:data:`SHIFT`) pushes the next word, REDUCE (:data:`REDUCE`)
  pops two subtrees and pushes their constituent; the words in order, each constituent
  reduced right after its last word, inner before outer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

__all__ = [
    "SHIFT",
    "REDUCE",
    "PAD_ACTION",
    "Span",
    "check_tree",
    "spans_to_actions",
    "actions_to_spans",
    "spans_to_brackets",
    "brackets_to_spans",
    "spans_to_indicators",
    "indicators_to_spans",
    "indicators_to_actions",
]

SHIFT = 0
REDUCE = 1
#: fills an action tensor after a sentence's ``2n - 1`` actions
PAD_ACTION = -1

Span = tuple[int, int]


def check_tree(spans: Iterable[Span], length: int) -> list[Span]:
    """The spans sorted (by start, then widest first) after checking they form a binary tree.

    Args:
        spans: Inclusive word spans ``(i, j)``.
        length: Number of words ``n`` (at least 1).

    Raises:
        ValueError: naming the first problem (a span out of range, a repeated or missing
            span, crossing spans, a constituent not split in two).
    """
    if length < 1:
        raise ValueError(f"a tree needs at least one word, got length {length}")
    spans = [(int(i), int(j)) for i, j in spans]
    for i, j in spans:
        if not 0 <= i <= j < length:
            raise ValueError(f"span ({i}, {j}) is not inside a sentence of {length} words")
    present = set(spans)
    if len(present) != len(spans):
        raise ValueError(f"repeated spans in {sorted(spans)}")
    ordered = sorted(spans, key=lambda s: (s[0], -s[1]))
    needed = [(0, length - 1), *((i, i) for i in range(length))]
    missing = [span for span in needed if span not in present]
    if missing:
        raise ValueError(
            f"a tree over {length} words needs the root (0, {length - 1}) and every leaf; "
            f"missing {missing}"
        )
    if len(spans) != 2 * length - 1:
        raise ValueError(
            f"a binary tree over {length} words has {2 * length - 1} spans, got {len(spans)}"
        )
    # in (start, widest-first) order every span lies inside the last open span that reaches it
    open_spans: list[Span] = []
    for i, j in ordered:
        while open_spans and open_spans[-1][1] < i:
            open_spans.pop()
        if open_spans and j > open_spans[-1][1]:
            raise ValueError(f"spans {open_spans[-1]} and {(i, j)} cross")
        open_spans.append((i, j))
    # laminar + all leaves + 2n - 1 spans: every constituent has exactly two children
    return ordered


def spans_to_actions(spans: Iterable[Span], length: int) -> list[int]:
    """SHIFT/REDUCE actions (``2n - 1``) of the binary tree given by its spans."""
    ordered = check_tree(spans, length)
    ends: dict[int, int] = {}
    for i, j in ordered:
        if j > i:
            ends[j] = ends.get(j, 0) + 1
    actions: list[int] = []
    for j in range(length):
        actions.append(SHIFT)
        actions.extend([REDUCE] * ends.get(j, 0))
    return actions


def actions_to_spans(actions: Sequence[int]) -> list[Span]:
    """The spans (sorted by start, widest first) built by a SHIFT/REDUCE action sequence.

    Raises:
        ValueError: when the sequence does not build exactly one binary tree.
    """
    stack: list[Span] = []
    spans: list[Span] = []
    words = 0
    for step, action in enumerate(actions):
        if action == SHIFT:
            stack.append((words, words))
            spans.append((words, words))
            words += 1
        elif action == REDUCE:
            if len(stack) < 2:
                raise ValueError(f"REDUCE at step {step} with {len(stack)} subtree(s) on the stack")
            (i, _), (_, j) = stack[-2], stack[-1]
            del stack[-2:]
            stack.append((i, j))
            spans.append((i, j))
        else:
            raise ValueError(
                f"unknown action {action!r} at step {step} (SHIFT={SHIFT}, REDUCE={REDUCE})"
            )
    if len(stack) != 1:
        raise ValueError(f"the actions leave {len(stack)} subtrees on the stack, expected one")
    return sorted(spans, key=lambda s: (s[0], -s[1]))


def spans_to_brackets(spans: Iterable[Span], words: Sequence[str]) -> str:
    """The bracketed string of a binary tree, ``"((the cat) sat)"``.

    Args:
        spans: The tree's spans.
        words: The sentence's words (their number is the tree's length).
    """
    ordered = check_tree(spans, len(words))
    children: dict[Span, Span] = {}  # constituent -> its left child
    for i, j in ordered:
        if j > i:
            # the left child is the widest span starting at i inside (i, j), the next in order
            children[(i, j)] = next(s for s in ordered if s[0] == i and s[1] < j)

    def show(span: Span) -> str:
        i, j = span
        if i == j:
            return words[i]
        left = children[span]
        return f"({show(left)} {show((left[1] + 1, j))})"

    return show((0, len(words) - 1))


def brackets_to_spans(text: str) -> tuple[list[Span], list[str]]:
    """Parse ``"((the cat) sat)"`` into ``(spans, words)``; a single word is a one-word tree.

    Raises:
        ValueError: for unbalanced brackets or a constituent that does not have exactly two
            children.
    """
    tokens = text.replace("(", " ( ").replace(")", " ) ").split()
    words: list[str] = []
    spans: list[Span] = []
    stack: list[list[Span]] = []  # children of each open constituent
    top: list[Span] = []
    for token in tokens:
        if token == "(":
            stack.append([])
        elif token == ")":
            if not stack:
                raise ValueError(f"unbalanced ')' in {text!r}")
            kids = stack.pop()
            if len(kids) != 2:
                raise ValueError(
                    f"a constituent must have exactly two children, got {len(kids)} in {text!r}"
                )
            span = (kids[0][0], kids[1][1])
            spans.append(span)
            (stack[-1] if stack else top).append(span)
        else:
            span = (len(words), len(words))
            words.append(token)
            spans.append(span)
            (stack[-1] if stack else top).append(span)
    if stack:
        raise ValueError(f"unbalanced '(' in {text!r}")
    if len(top) != 1:
        raise ValueError(f"expected one tree, got {len(top)} top-level items in {text!r}")
    return sorted(spans, key=lambda s: (s[0], -s[1])), words


def spans_to_indicators(
    trees: Sequence[Iterable[Span]],
    lengths: Sequence[int],
    *,
    n: int | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """A batch of span sets as a ``(B, N, N)`` float span-indicator tensor.

    Args:
        trees: One span set per sentence.
        lengths: The sentences' lengths.
        n: Padded length ``N`` (default: the longest sentence).
        device: Where the tensor goes.
    """
    if len(trees) != len(lengths):
        raise ValueError(f"got {len(trees)} trees for {len(lengths)} lengths")
    n = max(lengths) if n is None else n
    if max(lengths) > n:
        raise ValueError(f"a sentence of {max(lengths)} words does not fit a padded length {n}")
    out = torch.zeros(len(trees), n, n, device=device)
    for b, (spans, length) in enumerate(zip(trees, lengths, strict=True)):
        for i, j in check_tree(spans, length):
            out[b, i, j] = 1.0
    return out


def indicators_to_spans(indicators: Tensor, lengths: Tensor | Sequence[int]) -> list[list[Span]]:
    """Span sets (sorted by start, widest first) of a ``(B, N, N)`` span-indicator tensor.

    Only the spans inside each sentence are read; each set is checked to be a binary tree.
    """
    indicators = indicators.detach().cpu()
    result = []
    for b, length in enumerate(torch.as_tensor(lengths).tolist()):
        ii, jj = torch.nonzero(indicators[b, :length, :length].triu() > 0.5, as_tuple=True)
        result.append(check_tree(zip(ii.tolist(), jj.tolist(), strict=True), length))
    return result


def indicators_to_actions(indicators: Tensor, lengths: Tensor) -> Tensor:
    """SHIFT/REDUCE actions of a batch of trees, vectorised: ``(B, 2N - 1)`` long tensor.

    Sentence ``b``'s ``2 n_b - 1`` actions come first, then :data:`PAD_ACTION`. Word ``j`` is
    shifted after the words before it and the reductions of the constituents that end before
    it, so its SHIFT sits at ``j + (number of constituents ending before j)``; every other
    position of the sentence is a REDUCE. The indicators are trusted to hold binary trees
    (as :class:`seqae.tree.crf.TreeCRF` produces them); check user input with
    :func:`indicators_to_spans`.

    Args:
        indicators: ``(B, N, N)`` span indicators (leaves included or not: only constituents
            of two or more words are counted).
        lengths: ``(B,)`` sentence lengths.
    """
    batch, n, _ = indicators.shape
    device = indicators.device
    lengths = lengths.to(device)
    pos = torch.arange(n, device=device)
    constituents = indicators.triu(1) > 0.5  # (B, N, N), words i < j
    ends = constituents.long().sum(1) * (pos < lengths[:, None])  # (B, N): constituents ending at j
    before = ends.cumsum(1) - ends  # ending before word j
    actions = torch.full((batch, 2 * n - 1), PAD_ACTION, dtype=torch.long, device=device)
    slots = torch.arange(2 * n - 1, device=device)
    actions[slots[None, :] < (2 * lengths - 1)[:, None]] = REDUCE
    shift_at = (pos + before).masked_fill(pos >= lengths[:, None], 2 * n - 1)  # out of range: drop
    padded = torch.cat([actions, actions.new_zeros(batch, 1)], dim=1)
    padded.scatter_(1, shift_at, SHIFT)
    return padded[:, : 2 * n - 1]
