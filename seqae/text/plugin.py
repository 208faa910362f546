"""seqae's text plugin, registered through the ``seqae.plugins`` entry point ``text``.

Adds ``seqae data text`` (``data_builder``: the embedded article/summary corpus) and the
summary autoencoder's models (``model`` and ``saved_model``: ``summary_generator``,
``summary_reconstructor``, ``summary_discriminator``, ``summary_lm``, and ``summary_policy``:
``summary_ppo``'s policy).
"""

from __future__ import annotations

from typing import Any


def register(registry: Any) -> None:
    """Register the text plugin's components."""
    from seqae.text import corpus, summarize
    from seqae.text.discriminator import PrefixDiscriminator
    from seqae.text.generator import PointerGenerator
    from seqae.text.language_model import SummaryLanguageModel
    from seqae.text.policy import SummaryPolicy
    from seqae.text.reconstructor import Reconstructor

    registry.register("data_builder", "text", corpus.add_parser)
    registry.register("cli", "summarize", summarize.add_parser)
    models = (PointerGenerator, Reconstructor, PrefixDiscriminator, SummaryLanguageModel)
    for model in (*models, SummaryPolicy):
        registry.register("model", model.model_type, model.from_config)
        registry.register("saved_model", model.model_type, model)
