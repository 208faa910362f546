"""seqae's audio plugin, registered through the ``seqae.plugins`` entry point ``audio``.

Adds the voice-conversion models (``model``: ``adain_vc``, ``vq_vc``, ``autovc``), the speech
corpus dataset (``dataset``: ``speech``) and the commands ``seqae data speech``,
``seqae convert``, ``seqae vc-eval`` and ``seqae vc-compare`` (``cli``).
"""

from __future__ import annotations

from typing import Any


def register(registry: Any) -> None:
    """Register the audio models, dataset and commands."""
    from seqae.audio import convert, corpus, dataset, evaluate, models

    for name, cls in models.VC_MODELS.items():
        registry.register("model", name, cls.from_config)
    registry.register("dataset", "speech", dataset.SpeechCorpus)
    registry.register("cli", "data", corpus.add_parser)
    registry.register("cli", "convert", convert.add_parser)
    registry.register("cli", "vc-eval", evaluate.add_parser)
    registry.register("cli", "vc-compare", evaluate.add_compare_parser)
