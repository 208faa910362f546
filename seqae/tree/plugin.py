"""seqae's tree plugin, registered through the ``seqae.plugins`` entry point ``tree``.

Adds ``seqae data tree`` (``data_builder``: sentences of a generated grammar with gold trees),
the ``tree_crf`` bottleneck (span scores -> sampled binary trees) and the ``span_scorer``
encoder (token ids -> span scores).
Adds ``seqae parse`` (``cli``: bracketed trees of sentences with a trained tree parser).
Models (``model`` and ``saved_model``): ``rnng``, ``urnng`` and the LSTM baseline ``tree_lm``.
The compound PCFG ``compound_pcfg`` (:mod:`seqae.tree.pcfg`) is registered the same way.
"""

from __future__ import annotations

from typing import Any


def register(registry: Any) -> None:
    """Register the tree plugin's components."""
    from seqae.tree import corpus
    from seqae.tree.bottleneck import TreeCRFBottleneck
    from seqae.tree.crf import SpanScorer

    registry.register("data_builder", "tree", corpus.add_parser)
    from seqae.tree import parse

    registry.register("cli", "parse", parse.add_parser)
    registry.register("bottleneck", "tree_crf", TreeCRFBottleneck)
    registry.register("encoder", "span_scorer", SpanScorer)
    from seqae.tree.lm import TreeLanguageModel
    from seqae.tree.rnng import RNNG
    from seqae.tree.urnng import URNNG

    for model in (RNNG, URNNG, TreeLanguageModel):
        registry.register("model", model.model_type, model.from_config)
        registry.register("saved_model", model.model_type, model)
    from seqae.tree.pcfg import CompoundPCFG

    registry.register("model", CompoundPCFG.model_type, CompoundPCFG.from_config)
    registry.register("saved_model", CompoundPCFG.model_type, CompoundPCFG)
