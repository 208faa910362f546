"""The summary autoencoder (issue 19) on its tiny config: outputs, resume, the ablation, bad
settings. Needs the text extra and this machine's apt English descriptions (Translation-en)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from seqae.extras import missing_modules

if missing_modules("text"):
    pytest.skip("seqae's text extra is not installed", allow_module_level=True)

from seqae import load_pretrained  # noqa: E402
from seqae.cli import find_recipe, load_recipe, main, run_recipe  # noqa: E402
from seqae.config import ConfigError  # noqa: E402
from seqae.text.discriminator import PrefixDiscriminator  # noqa: E402
from seqae.text.generator import PointerGenerator  # noqa: E402
from seqae.text.reconstructor import Reconstructor  # noqa: E402
from seqae.text.tokenizer import WordTokenizer  # noqa: E402
from tests.recipes.resume_checks import (  # noqa: E402
    Interrupted,
    comparable,
    interrupt_after_first_part,
    interrupt_at_call,
)

TINY = "summary_ae_tiny"
SYSTEMS = ("model", "warm_start", "lead_8", "lead_n")


def _run(out: Path, corpus: Path, *more: str) -> dict:
    return run_recipe(
        "summary_ae", config=TINY, overrides=[f"output_dir={out}", f"data.corpus={corpus}", *more]
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, text_corpus: Path) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("summary_ae") / "run"
    return out, _run(out, text_corpus)


def test_tiny_run_writes_every_output(tiny_run: tuple[Path, dict]) -> None:
    out, metrics = tiny_run
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    for system in SYSTEMS:
        for variant in ("rouge1", "rouge2", "rouge_l"):
            value = on_disk[f"{system}_{variant}"]
            low, high = on_disk[f"{system}_{variant}_interval"]
            assert 0.0 <= low <= value <= high <= 1.0, (system, variant)
    # Lead-N is cut to the model's mean length
    assert on_disk["lead_n_mean_words"] == pytest.approx(on_disk["model_mean_words"], abs=0.5)
    assert 0 < on_disk["model_mean_words"] <= 8  # eval.max_words
    # eval.no_repeat_ngram: 1, so no writer repeats a word (the reference summaries may)
    assert on_disk["model_repeat_rate"] == on_disk["warm_start_repeat_rate"] == 0.0
    for system in (*SYSTEMS, "reference"):
        assert on_disk[f"{system}_reconstruction_nll"] > 0
        assert 0.0 <= on_disk[f"{system}_reconstruction_token_accuracy"] <= 1.0
        assert on_disk[f"{system}_perplexity"] > 1.0
    assert on_disk["steps"] == 6 and on_disk["n_test"] == 40
    assert on_disk["parts"]["language_model"]["valid_perplexity"] > 1.0
    table = (out / "eval_table.md").read_text()
    for row in ("| model |", "| warm start |", "| Lead-N |", "| Lead-8 |", "| reference |"):
        assert row in table
    assert table.count("**Article ") == 5
    assert any((out / "tb").iterdir())


def test_tokenizer_and_models_reload(tiny_run: tuple[Path, dict]) -> None:
    out, metrics = tiny_run
    tok = WordTokenizer.load(out / "parts" / "tokenizer")
    assert tok.vocab_size == metrics["vocab_size"]
    kinds = {
        "generator": PointerGenerator,
        "reconstructor": Reconstructor,
        "discriminator": PrefixDiscriminator,
    }
    for name, cls in kinds.items():
        for folder in (out / "models" / name, out / "parts" / f"warm_{name}"):
            model = load_pretrained(folder)
            assert isinstance(model, cls), folder
            assert model.vocab_size == tok.vocab_size


def test_model_folder_summarizes(
    tiny_run: tuple[Path, dict],
    text_corpus: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The run's model/ folder is a summarizer: `seqae summarize` on the test pairs writes the
    recipe's own greedy summaries (eval_table.md's examples), keeping every other key."""
    out, _ = tiny_run
    folder = out / "model"
    assert isinstance(load_pretrained(folder), PointerGenerator)
    tok = WordTokenizer.load(folder)
    summaries = tmp_path / "summaries.jsonl"
    args = ["summarize", "--model", str(folder), "--input", str(text_corpus / "test.jsonl")]
    assert main([*args, "--out", str(summaries)]) == 0
    rows = [json.loads(line) for line in (text_corpus / "test.jsonl").read_text().splitlines()]
    got = [json.loads(line) for line in summaries.read_text(encoding="utf-8").splitlines()]
    assert len(got) == len(rows) == 40
    for row, obj in zip(rows, got, strict=True):
        assert {k: v for k, v in obj.items() if k != "summary"} == {
            k: v for k, v in row.items() if k != "summary"
        }
    table = (out / "eval_table.md").read_text()
    expected = [
        line[len("- model: ") :] for line in table.splitlines() if line.startswith("- model: ")
    ]
    assert len(expected) == 5
    assert [obj["summary"] for obj in got[:5]] == expected
    assert main([*args, "--out", str(summaries), "--beam", "2", "--max-words", "2"]) == 0
    got = [json.loads(line) for line in summaries.read_text(encoding="utf-8").splitlines()]
    assert len(got) == 40 and all(len(tok.tokenize(g["summary"]).words) <= 2 for g in got)
    settings = json.loads((folder / "summarizer.json").read_text(encoding="utf-8"))
    assert settings["no_repeat_ngram"] == 1  # the evaluation's decoding, so the same summaries


def test_config_typo_is_a_config_error(tmp_path: Path, text_corpus: Path) -> None:
    with pytest.raises(ConfigError, match=r"adversary\.wieght"):
        _run(tmp_path / "typo", text_corpus, "adversary.wieght=0")
    with pytest.raises(ConfigError, match="pseudo.drop"):
        _run(tmp_path / "bad", text_corpus, "pseudo.drop=1.5")
    for key in ("train.no_repeat_ngram", "eval.no_repeat_ngram"):
        with pytest.raises(ConfigError, match=rf"{key} must be an integer >= 0"):
            _run(tmp_path / "bad", text_corpus, f"{key}=-1")
    assert not (tmp_path / "typo").exists() and not (tmp_path / "bad").exists()


def test_a_users_folder_is_never_built_over(tmp_path: Path) -> None:
    """data.corpus naming a folder that holds files but no corpus.json is refused, the files
    untouched (the corpus is built only into a missing or empty folder)."""
    mine = tmp_path / "mydata"
    mine.mkdir()
    (mine / "train_articles.txt").write_text("my own articles\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="holds files but no corpus.json"):
        _run(tmp_path / "run", mine)
    assert [p.name for p in mine.iterdir()] == ["train_articles.txt"]
    assert (mine / "train_articles.txt").read_text(encoding="utf-8") == "my own articles\n"


def test_interrupted_in_adversarial_loop_then_resumed_matches(
    tiny_run: tuple[Path, dict], text_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, full = tiny_run
    recipe = load_recipe(find_recipe("summary_ae"))
    # check_finite runs once per adversarial step, before the update: stop in the 4th step
    restore = interrupt_at_call(monkeypatch, recipe, "check_finite", call=4)
    out = tmp_path / "part"
    with pytest.raises(Interrupted):
        _run(out, text_corpus)
    assert not (out / "metrics.json").exists()
    restore()
    resumed = _run(out, text_corpus, "resume=true")
    assert comparable(resumed) == comparable(full)


def test_interrupted_between_parts_then_resumed_matches(
    tiny_run: tuple[Path, dict], text_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, full = tiny_run
    interrupt_after_first_part(monkeypatch)
    out = tmp_path / "part"
    with pytest.raises(Interrupted):
        _run(out, text_corpus)
    monkeypatch.undo()
    assert (out / "parts" / "tokenizer.json").is_file()
    assert not (out / "parts" / "warm_generator.json").exists()
    resumed = _run(out, text_corpus, "resume=true")
    assert comparable(resumed) == comparable(full)


def test_no_discriminator_ablation_shares_the_warm_starts(
    tiny_run: tuple[Path, dict], text_corpus: Path, tmp_path: Path
) -> None:
    """The ablation copies the full run's tokenizer, warm starts and judging language model
    (warm_start.from_run), so only the adversarial stage differs."""
    first, full = tiny_run
    out = tmp_path / "ablation"
    metrics = _run(out, text_corpus, "adversary.weight=0", f"warm_start.from_run={first}")
    assert metrics["adversary_weight"] == 0
    assert 0.0 <= metrics["model_rouge1"] <= 1.0
    assert metrics["parts"] == full["parts"]
    assert metrics["warm_start_rouge1"] == full["warm_start_rouge1"]
    assert metrics["reference_perplexity"] == full["reference_perplexity"]
    for part in ("warm_generator", "language_model"):
        for name in ("model.safetensors", "config.json"):
            assert (out / "parts" / part / name).read_bytes() == (
                first / "parts" / part / name
            ).read_bytes()
    assert WordTokenizer.load(out / "parts" / "tokenizer").vocab_size == full["vocab_size"]


def test_warm_starts_are_shared_only_between_runs_with_the_same_settings(
    tiny_run: tuple[Path, dict],
    text_corpus: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, _ = tiny_run
    with pytest.raises(ConfigError, match=r"other tokenizer settings"):
        _run(
            tmp_path / "a", text_corpus, "tokenizer.vocab_size=500", f"warm_start.from_run={first}"
        )
    with pytest.raises(ConfigError, match=r"not a readable summary_ae run"):
        _run(tmp_path / "b", text_corpus, f"warm_start.from_run={tmp_path / 'nowhere'}")
    args = ["run", "summary_ae", "--config", TINY, f"output_dir={tmp_path / 'c'}"]
    assert main([*args, f"data.corpus={text_corpus}", f"warm_start.from_run={tmp_path}"]) == 2
    assert "warm_start.from_run" in capsys.readouterr().err


@pytest.mark.slow
def test_torchrun_two_processes(
    tiny_run: tuple[Path, dict], text_corpus: Path, tmp_path: Path, torchrun
) -> None:
    """Two CPU processes under torchrun: the warm starts are rank 0's (the same as a single
    process's), then each rank trains on its shard of the corpus under DDP."""
    _, single = tiny_run
    out = tmp_path / "ddp"
    metrics = torchrun("summary_ae", TINY, out, f"data.corpus={text_corpus}")
    assert metrics["world_size"] == 2 and metrics["steps"] == single["steps"]
    assert metrics["parts"] == single["parts"]
    assert 0.0 <= metrics["model_rouge1"] <= 1.0
    # two processes' updates differ from one process's: the adversarial stage did run in DDP
    generator = PointerGenerator.from_pretrained(out / "models" / "generator")
    warm = PointerGenerator.from_pretrained(out / "parts" / "warm_generator")
    moved = any(
        not torch.equal(a, b)
        for a, b in zip(generator.state_dict().values(), warm.state_dict().values(), strict=True)
    )
    assert moved


def test_settings_are_chosen_on_the_validation_pairs(
    tiny_run: tuple[Path, dict],
    text_corpus: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """eval.split=valid scores the validation pairs (the test pairs stay for the report)."""
    first, full = tiny_run
    out = tmp_path / "valid"
    metrics = _run(out, text_corpus, "eval.split=valid", f"warm_start.from_run={first}")
    assert "valid ROUGE-1/L F1" in capsys.readouterr().out  # the summary line names the split
    valid = [json.loads(line) for line in (text_corpus / "valid.jsonl").read_text().splitlines()]
    assert metrics["n_test"] == len(valid)
    assert "the valid pairs" in (out / "eval_table.md").read_text()
    # the same model, other pairs: other scores
    assert metrics["lead_8_rouge1"] != full["lead_8_rouge1"]


def test_gumbel_softmax_ablation_trains_the_writer_by_backpropagation(
    tiny_run: tuple[Path, dict], text_corpus: Path, tmp_path: Path
) -> None:
    first, full = tiny_run
    out = tmp_path / "gumbel"
    metrics = _run(out, text_corpus, "train.estimator=gumbel", f"warm_start.from_run={first}")
    assert metrics["parts"] == full["parts"] and metrics["steps"] == full["steps"]
    generator = PointerGenerator.from_pretrained(out / "models" / "generator")
    warm = PointerGenerator.from_pretrained(first / "parts" / "warm_generator")
    assert any(
        not torch.equal(a, b)
        for a, b in zip(generator.state_dict().values(), warm.state_dict().values(), strict=True)
    )
    with pytest.raises(ConfigError, match="train.estimator"):
        _run(tmp_path / "bad", text_corpus, "train.estimator=reinforcee")
