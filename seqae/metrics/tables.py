"""Result tables in Markdown, with each number's uncertainty next to it.

>>> iv = corpus_wer_bootstrap(refs, hyps)                 # (wer, se, low, high)
>>> format_estimate(*iv)
'0.214 ± 0.018 [0.180, 0.251]'
>>> print(markdown_table(["system", "WER ± s.e."], [["A", format_estimate(0.2, 0.01)]]))
| system | WER ± s.e. |
|---|---|
| A | 0.200 ± 0.010 |
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

__all__ = ["format_estimate", "format_number", "markdown_table"]

ALIGNMENTS = {"left": ":---", "center": ":---:", "right": "---:", None: "---"}


def format_number(value: float, *, digits: int = 3, signed: bool = False) -> str:
    """``value`` with ``digits`` decimals (a leading ``+`` on positives when ``signed``).

    Args:
        value: The number; NaN and infinities are written as ``nan``, ``inf``, ``-inf``.
        digits: Decimals, >= 0.
        signed: Write the sign of positive values too, for differences.
    """
    if digits < 0:
        raise ValueError(f"format_number: digits must be >= 0, got {digits}")
    return f"{float(value):{'+' if signed else ''}.{digits}f}"


def format_estimate(
    value: float,
    se: float | None = None,
    low: float | None = None,
    high: float | None = None,
    *,
    digits: int = 3,
    signed: bool = False,
) -> str:
    """One table cell: ``value ± se [low, high]``, each part present when given.

    The arguments are in the order of a bootstrap interval, so ``format_estimate(*interval)``
    writes a :class:`~seqae.metrics.bootstrap.BootstrapInterval` or a
    :class:`~seqae.metrics.wer.WERInterval`, and ``format_estimate(*mean_and_se(x))`` a mean.

    Args:
        value: The estimate.
        se: Its standard error (written unsigned).
        low: Lower end of its interval; give ``high`` too.
        high: Upper end of its interval.
        digits: Decimals of every number.
        signed: Write ``+`` on positive estimates and interval ends (for differences).
    """
    if (low is None) != (high is None):
        raise ValueError("format_estimate: give both ends of the interval (low and high) or none")
    text = format_number(value, digits=digits, signed=signed)
    if se is not None:
        text += f" ± {format_number(se, digits=digits)}"
    if low is not None and high is not None:
        lo = format_number(low, digits=digits, signed=signed)
        hi = format_number(high, digits=digits, signed=signed)
        text += f" [{lo}, {hi}]"
    return text


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, bool) or value is None:
        text = "" if value is None else str(value)
    elif isinstance(value, Integral):
        text = str(int(value))
    elif isinstance(value, Real) and math.isfinite(float(value)):
        text = format_number(float(value), digits=digits)
    else:
        text = str(value)
    # a pipe would end the cell and a line break the row
    return text.replace("|", "\\|").replace("\r\n", " ").replace("\n", " ")


def markdown_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    digits: int = 3,
    align: Sequence[str | None] | None = None,
) -> str:
    """A GitHub-flavoured Markdown table.

    Cells are written as given when they are strings (use :func:`format_estimate` for a number
    with its uncertainty); integers as integers, other finite numbers with ``digits`` decimals,
    ``None`` as an empty cell. Pipes inside cells are escaped and line breaks become spaces, so
    any text stays inside its cell.

    Args:
        columns: Header of each column.
        rows: One sequence of cells per row, as many as ``columns``.
        digits: Decimals of float cells.
        align: Per column ``"left"``, ``"center"``, ``"right"`` or ``None`` (the renderer's
            default); ``None`` for all defaults.

    Returns:
        The table, one line per row, without a trailing newline.

    Raises:
        ValueError: No columns, a row of another length, or an unknown alignment.
    """
    if isinstance(columns, str) or len(columns) == 0:
        raise ValueError("markdown_table: columns must be a non-empty sequence of headers")
    width = len(columns)
    if align is None:
        align = [None] * width
    if len(align) != width or any(a not in ALIGNMENTS for a in align):
        raise ValueError(
            f"markdown_table: align must give one of left, center, right or None for each of "
            f"the {width} columns, got {list(align)}"
        )
    lines = [
        "| " + " | ".join(_cell(c, digits) for c in columns) + " |",
        "|" + "|".join(ALIGNMENTS[a] for a in align) + "|",
    ]
    for i, row in enumerate(rows):
        if isinstance(row, str) or len(row) != width:
            got = "a string" if isinstance(row, str) else f"{len(row)} cells"
            raise ValueError(f"markdown_table: row {i} has {got}; expected {width} cells")
        lines.append("| " + " | ".join(_cell(c, digits) for c in row) + " |")
    return "\n".join(lines)
