"""Comparing two voice-conversion evaluations pair for pair (``seqae vc-compare``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seqae.audio.dataset import SpeechDataError
from seqae.audio.evaluate import (
    compare_evaluations,
    format_comparison,
    format_table,
    load_eval_pairs,
)
from seqae.cli import main
from seqae.metrics.speech import corpus_wer, paired_wer_difference


def _rows(hyp_errors: list[int], sims: list[float], *, group: str = "seen") -> list[dict]:
    """One converted and one floor row per pair; pair i has ``hyp_errors[i]`` substitutions."""
    rows = []
    for i, (n_err, sim) in enumerate(zip(hyp_errors, sims, strict=True)):
        ref = [f"w{i}_{k}" for k in range(8)]
        hyp = ["zz"] * n_err + ref[n_err:]
        pair = {
            "group": group,
            "target": "kal16",
            "source": f"spk{i % 5}",
            "source_kind": "festival",
            "sentence": f"{111 + i % 20}",
            "references": [f"kal16_{i % 7:03d}"],
            "reference_text": " ".join(ref),
        }
        rows.append(
            pair
            | {"system": "converted", "hypothesis": " ".join(hyp), "sim_target": sim}
            | {"sim_source": 0.5, "closer": sim > 0.5, "mcd": 3.0}
        )
        rows.append(
            pair
            | {"system": "floor", "hypothesis": " ".join(ref), "sim_target": 0.4}
            | {"sim_source": 1.0, "closer": False, "mcd": 5.0}
        )
    return rows


@pytest.fixture
def two_runs() -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(0)
    n = 60
    err_a = rng.integers(0, 4, n).tolist()
    err_b = [max(e - 1, 0) if i % 2 == 0 else e for i, e in enumerate(err_a)]  # B fixes some
    sim_a = rng.uniform(0.4, 0.8, n)
    sim_b = sim_a + 0.02
    return _rows(err_a, sim_a.tolist()), _rows(err_b, sim_b.tolist())


def test_compare_evaluations_pairs_rows_and_scores_the_difference(two_runs) -> None:
    a, b = two_runs
    res = compare_evaluations(a, b, n_boot=1000)
    seen = res["seen"]
    assert seen["n"] == 60 and res["unmatched"] == [0, 0]
    conv_a = [r for r in a if r["system"] == "converted"]
    conv_b = [r for r in b if r["system"] == "converted"]
    refs = [r["reference_text"] for r in conv_a]
    wer_a = corpus_wer(refs, [r["hypothesis"] for r in conv_a])
    wer_b = corpus_wer(refs, [r["hypothesis"] for r in conv_b])
    assert seen["wer_a"] == pytest.approx(wer_a) and seen["wer_b"] == pytest.approx(wer_b)
    assert seen["wer_diff"] == pytest.approx(wer_b - wer_a) and seen["wer_diff"] < 0
    expect = paired_wer_difference(
        refs, [r["hypothesis"] for r in conv_a], [r["hypothesis"] for r in conv_b], n_boot=1000
    )
    assert seen["wer_diff_se"] == pytest.approx(expect.se)
    assert [seen["wer_diff_low"], seen["wer_diff_high"]] == pytest.approx([expect.low, expect.high])
    # a constant per-pair gain has no spread
    assert seen["sim_target_diff"] == pytest.approx(0.02)
    assert seen["sim_target_diff_se"] == pytest.approx(0.0, abs=1e-12)
    # B's rows in another order pair up the same way
    res_shuffled = compare_evaluations(a, b[::-1], n_boot=1000)
    assert res_shuffled["seen"]["wer_diff"] == pytest.approx(seen["wer_diff"])
    assert res_shuffled["seen"]["sim_target_diff"] == pytest.approx(0.02)
    # the floor is the same audio in both runs
    floor = compare_evaluations(a, b, system="floor")["seen"]
    assert floor["wer_diff"] == 0.0 and floor["sim_target_diff"] == 0.0
    table = format_comparison(res, "base", "new")
    assert "A: base; B: new" in table and "| seen | 60 |" in table


def test_compare_evaluations_unmatched_and_repeated_pairs(two_runs) -> None:
    a, b = two_runs
    # a pair drawn twice in both runs: k-th draw against k-th draw
    res = compare_evaluations(a + a[:2], b + b[:2])
    assert res["seen"]["n"] == 61
    # pairs only one run has are left out and counted
    extra = _rows([0, 1], [0.6, 0.7], group="unseen")
    res = compare_evaluations(a[:-4] + extra, b)
    assert res["seen"]["n"] == 58 and "unseen" not in res
    assert res["unmatched"] == [2, 2]
    assert "Not compared: 2 pairs only in A, 2 only in B." in format_comparison(res)
    with pytest.raises(ValueError, match="share no 'converted' pair"):
        compare_evaluations(a, extra)


def test_load_eval_pairs_reads_both_layouts_and_rejects_bad_files(tmp_path, two_runs) -> None:
    a, _ = two_runs
    cli_dir, recipe_dir = tmp_path / "cli", tmp_path / "recipe"
    cli_dir.mkdir()
    recipe_dir.mkdir()
    (cli_dir / "eval.json").write_text(json.dumps({"summary": {}, "pairs": a}))
    (recipe_dir / "eval_pairs.json").write_text(json.dumps(a))
    assert load_eval_pairs(cli_dir) == a
    assert load_eval_pairs(recipe_dir / "eval_pairs.json") == a
    with pytest.raises(SpeechDataError, match="no eval.json .* or eval_pairs.json"):
        load_eval_pairs(tmp_path)
    with pytest.raises(SpeechDataError, match="no such evaluation file"):
        load_eval_pairs(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SpeechDataError, match="not a JSON evaluation file"):
        load_eval_pairs(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"pairs": [{"group": "seen"}]}))
    with pytest.raises(SpeechDataError, match="expected a list of evaluation rows"):
        load_eval_pairs(tmp_path / "other.json")
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(SpeechDataError, match="expected a list of evaluation rows"):
        load_eval_pairs(tmp_path / "empty.json")


def test_vc_compare_command(tmp_path, two_runs, capsys) -> None:
    a, b = two_runs
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps({"summary": {}, "pairs": b}))
    out = tmp_path / "cmp.json"
    argv = ["vc-compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out", str(out)]
    assert main(argv) == 0
    assert "| seen | 60 |" in capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["seen"]["wer_diff"] == pytest.approx(compare_evaluations(a, b)["seen"]["wer_diff"])
    assert main(["vc-compare", str(tmp_path / "a.json"), str(tmp_path / "nope.json")]) == 2
    assert "seqae vc-compare: " in (err := capsys.readouterr().err)
    assert "nope.json: no such evaluation file" in err


def test_format_table_shows_the_wer_standard_error() -> None:
    row = {"n": 4, "sim_target": 0.7, "sim_source": 0.5, "closer": 0.75, "wer": 0.25, "mcd": 3.0}
    summary = {"seen": {"converted": row | {"wer_se": 0.031, "wer_low": 0.2, "wer_high": 0.3}}}
    assert "| 0.250 ± 0.031 |" in format_table(summary)
    # summaries written before the standard error existed still format
    assert "| 0.250 |" in format_table({"seen": {"converted": row}})


def test_compare_one_conversion_made_with_other_references(tmp_path, two_runs, capsys) -> None:
    a, b_one = two_runs
    # B converted the same sources with two references each
    b = [r | {"references": [*r["references"], "kal16_099"]} for r in b_one]
    with pytest.raises(ValueError, match="share no 'converted' pair"):
        compare_evaluations(a, b)
    res = compare_evaluations(a, b, same_references=False, n_boot=1000)
    assert res["seen"]["n"] == 60 and res["unmatched"] == [0, 0]
    assert res["seen"]["sim_target_diff"] == pytest.approx(0.02)
    expect = compare_evaluations(a, b_one)
    assert res["seen"]["wer_diff"] == pytest.approx(expect["seen"]["wer_diff"])
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    args = ["vc-compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    assert main(args) == 2
    assert main([*args, "--any-references"]) == 0
    assert "| seen | 60 |" in capsys.readouterr().out


def test_vc_compare_picks_one_reference_count(tmp_path, two_runs, capsys) -> None:
    """A recipe's eval_pairs.json holds an evaluation per reference count; --references picks."""
    a, b = two_runs
    two = [r | {"references": [*r["references"], "kal16_099"]} for r in a]
    (tmp_path / "a.json").write_text(json.dumps(a + two))
    (tmp_path / "b.json").write_text(json.dumps(b))
    out = tmp_path / "cmp.json"
    args = ["vc-compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out", str(out)]
    assert main([*args, "--references", "1"]) == 0
    assert "| seen | 60 |" in capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["seen"]["wer_diff"] == pytest.approx(compare_evaluations(a, b)["seen"]["wer_diff"])
    assert main([*args, "--references", "2"]) == 2  # B has no 2-reference conversions
    assert "share no 'converted' pair" in capsys.readouterr().err
