"""Argument checks shared by the tree plugin's models: each refuses a bad setting with one
``ValueError`` line that names the model and the argument::

    check_positive_ints("URNNG", samples=samples, chunk=chunk)
    check_token_settings("RNNG", vocab_size=..., pad_id=..., eos_id=..., embed_dim=...,
                         hidden_dim=..., layers=..., dropout=..., tie_weights=...)
"""

from __future__ import annotations

__all__ = ["check_positive_ints", "check_token_settings"]


def check_positive_ints(who: str, **values: object) -> None:
    """Refuse any value that is not a positive ``int`` (``bool`` is not one).

    Args:
        who: Class or method name used in the message.
        **values: The settings, by name, in the order to check them.

    Raises:
        ValueError: ``"{who}: {name} must be a positive int, got {value!r}"`` for the first
            bad one.
    """
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{who}: {name} must be a positive int, got {value!r}")


def check_token_settings(
    who: str,
    *,
    vocab_size: int,
    pad_id: int,
    eos_id: int | None,
    embed_dim: int,
    hidden_dim: int,
    layers: int,
    dropout: float,
    tie_weights: bool,
) -> None:
    """Check the settings a word-level tree model (the RNNG, the LSTM language model) shares:
    a vocabulary size and positive sizes, the special ids, the dropout and weight tying.

    Args:
        who: Class name used in the messages.
        vocab_size: Number of token ids.
        pad_id: Padding id (never predicted).
        eos_id: End-of-sentence id, or ``None``.
        embed_dim: Word embedding size.
        hidden_dim: LSTM size.
        layers: Stacked LSTM layers.
        dropout: Dropout probability, in ``[0, 1)``.
        tie_weights: Share the embeddings with the output layer (needs
            ``embed_dim == hidden_dim``).

    Raises:
        ValueError: The first bad setting, named.
    """
    check_positive_ints(
        who, vocab_size=vocab_size, embed_dim=embed_dim, hidden_dim=hidden_dim, layers=layers
    )
    for name, value in (("pad_id", pad_id), ("eos_id", eos_id)):
        if value is None and name == "eos_id":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < vocab_size:
            raise ValueError(f"{who}: {name} must be an id in 0..{vocab_size - 1}, got {value!r}")
    if eos_id == pad_id:
        raise ValueError(f"{who}: eos_id and pad_id must differ, both are {pad_id}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{who}: dropout must be in [0, 1), got {dropout!r}")
    if tie_weights and embed_dim != hidden_dim:
        raise ValueError(
            f"{who}: tie_weights needs embed_dim == hidden_dim, got {embed_dim} and {hidden_dim}"
        )
