"""seqae's tree plugin, registered through the ``seqae.plugins`` entry point ``tree``.

Adds ``seqae data tree`` (``data_builder``: sentences of a generated grammar with gold trees),
the ``tree_crf`` bottleneck (span scores -> sampled binary trees) and the ``span_scorer``
encoder (token ids -> span scores).
"""

from __future__ import annotations

from typing import Any


def register(registry: Any) -> None:
    """Register the tree plugin's components."""
    from seqae.tree import corpus
    from seqae.tree.bottleneck import TreeCRFBottleneck
    from seqae.tree.crf import SpanScorer

    registry.register("data_builder", "tree", corpus.add_parser)
    registry.register("bottleneck", "tree_crf", TreeCRFBottleneck)
    registry.register("encoder", "span_scorer", SpanScorer)
