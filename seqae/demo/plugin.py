"""seqae's demo plugin, registered through the ``seqae.plugins`` entry point ``demo``.

Adds ``seqae demo`` (``cli``: a local Gradio web app for the trained models under a runs
folder). Registered without importing gradio, so that the command exists without the ``demo``
extra and says how to install it.
"""

from __future__ import annotations

from typing import Any


def register(registry: Any) -> None:
    """Register the ``seqae demo`` command."""
    from seqae.demo import command

    registry.register("cli", "demo", command.add_parser)
