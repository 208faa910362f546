"""seqae's audio plugin, registered through the ``seqae.plugins`` entry point ``audio``.

Adds the voice-conversion models (``vc_model``, the class by ``model_type``: ``adain_vc``,
``vq_vc``, ``autovc``; ``model``, their ``from_config``; ``saved_model``, for
``seqae.load_pretrained``), the trained vocoder (``saved_model``: ``istft_vocoder``), the speech
corpus dataset (``dataset``: ``speech``) and the commands ``seqae data speech``,
``seqae convert``, ``seqae vc-eval`` and ``seqae vc-compare`` (``cli``).
"""

from __future__ import annotations

from typing import Any


def register(registry: Any) -> None:
    """Register the audio models, vocoder, dataset and commands."""
    from seqae.audio import (
        adain_vc,
        autovc,
        convert,
        corpus,
        dataset,
        evaluate,
        neural_vocoder,
        vq_vc,
    )
    from seqae.audio.vc_base import VC_MODEL_KIND
    from seqae.core.saving import SAVED_MODEL_KIND

    for cls in (adain_vc.AdaINVC, vq_vc.VQVC, autovc.AutoVC):
        registry.register(VC_MODEL_KIND, cls.model_type, cls)
        registry.register("model", cls.model_type, cls.from_config)
        registry.register(SAVED_MODEL_KIND, cls.model_type, cls)
    vocoder = neural_vocoder.ISTFTVocoder
    registry.register(SAVED_MODEL_KIND, vocoder.model_type, vocoder)
    registry.register("dataset", "speech", dataset.SpeechCorpus)
    registry.register("data_builder", "speech", corpus.add_parser)
    registry.register("cli", "convert", convert.add_parser)
    registry.register("cli", "vc-eval", evaluate.add_parser)
    registry.register("cli", "vc-compare", evaluate.add_compare_parser)
