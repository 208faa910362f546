"""seqae's text plugin, registered through the ``seqae.plugins`` entry point ``text``.

Adds ``seqae data text`` (``data_builder``: the embedded article/summary corpus).
"""

from __future__ import annotations

from typing import Any


def register(registry: Any) -> None:
    """Register the text plugin's components."""
    from seqae.text import corpus

    registry.register("data_builder", "text", corpus.add_parser)
