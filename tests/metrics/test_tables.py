"""Markdown result tables (seqae.metrics.tables)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from seqae.metrics.bootstrap import BootstrapInterval, mean_and_se
from seqae.metrics.tables import format_estimate, format_number, markdown_table
from seqae.metrics.wer import WERInterval


def _cells(line: str) -> list[str]:
    """The cells of one Markdown table line, splitting on pipes that are not escaped."""
    assert line.startswith("| ") and line.endswith(" |"), line
    return [c.replace("\\|", "|") for c in re.split(r" (?<!\\)\| ", line[2:-2])]


def test_format_number() -> None:
    assert format_number(0.12345) == "0.123"
    assert format_number(2, digits=1) == "2.0"
    assert format_number(0.5, signed=True) == "+0.500"
    assert format_number(-0.5, signed=True) == "-0.500"
    assert format_number(float("nan")) == "nan"
    with pytest.raises(ValueError, match="digits must be >= 0"):
        format_number(1.0, digits=-1)


def test_format_estimate_writes_what_it_is_given() -> None:
    assert format_estimate(0.2) == "0.200"
    assert format_estimate(0.2, 0.0123) == "0.200 ± 0.012"
    assert format_estimate(0.2, 0.01, 0.18, 0.22) == "0.200 ± 0.010 [0.180, 0.220]"
    assert format_estimate(0.2, None, 0.18, 0.22, digits=2) == "0.20 [0.18, 0.22]"
    # differences: signs on the estimate and the interval, never on the standard error
    assert format_estimate(-0.013, 0.004, -0.021, -0.005, signed=True) == (
        "-0.013 ± 0.004 [-0.021, -0.005]"
    )
    assert (
        format_estimate(0.01, 0.02, -0.03, 0.05, signed=True) == "+0.010 ± 0.020 [-0.030, +0.050]"
    )
    with pytest.raises(ValueError, match="both ends"):
        format_estimate(0.2, 0.01, 0.1)


def test_format_estimate_takes_intervals_and_means_unpacked() -> None:
    iv = BootstrapInterval(0.25, 0.02, 0.21, 0.29)
    assert format_estimate(*iv) == "0.250 ± 0.020 [0.210, 0.290]"
    assert format_estimate(*WERInterval(*iv)) == format_estimate(*iv)
    m = mean_and_se([1.0, 2.0, 3.0])
    assert format_estimate(*m, digits=2) == f"2.00 ± {np.std([1, 2, 3], ddof=1) / np.sqrt(3):.2f}"


def test_markdown_table_layout_and_cells() -> None:
    table = markdown_table(
        ["system", "n", "WER ± s.e.", "MCD (dB)", "note"],
        [
            ["A", 120, format_estimate(0.21, 0.02), 6.54321, None],
            ["B|C", np.int64(7), "0.1", np.float64(1.0), "two\nlines"],
        ],
        digits=2,
    )
    lines = table.split("\n")
    assert len(lines) == 4 and not table.endswith("\n")
    assert _cells(lines[0]) == ["system", "n", "WER ± s.e.", "MCD (dB)", "note"]
    assert lines[1] == "|---|---|---|---|---|"
    assert _cells(lines[2]) == ["A", "120", "0.210 ± 0.020", "6.54", ""]
    # a pipe stays inside its cell, a line break does not break the row
    assert _cells(lines[3]) == ["B|C", "7", "0.1", "1.00", "two lines"]


def test_markdown_table_alignment_and_errors() -> None:
    table = markdown_table(["a", "b", "c"], [], align=["left", "right", None])
    assert table.split("\n")[1] == "|:---|---:|---|"
    assert markdown_table(["x"], [["y"]], align=["center"]).split("\n")[1] == "|:---:|"
    with pytest.raises(ValueError, match="row 1 has 1 cells; expected 2"):
        markdown_table(["a", "b"], [[1, 2], [3]])
    with pytest.raises(ValueError, match="row 0 has a string"):
        markdown_table(["a", "b"], ["ab"])
    with pytest.raises(ValueError, match="non-empty sequence of headers"):
        markdown_table([], [])
    with pytest.raises(ValueError, match="non-empty sequence of headers"):
        markdown_table("ab", [])
    with pytest.raises(ValueError, match="align must give one of"):
        markdown_table(["a"], [], align=["middle"])
