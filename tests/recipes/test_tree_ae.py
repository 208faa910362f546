"""The tree autoencoder recipe (issue 20) on its tiny config, both models: every output, F1 with
its baselines, perplexities on the same tokens, resume, torchrun, bad settings and bad user
files, and ``seqae parse`` on the run's model folder."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import pytest
import torch

from seqae import load_pretrained
from seqae.cli import find_recipe, load_recipe, main, run_recipe
from seqae.config import ConfigError
from seqae.metrics.parsing import Bracketing, baseline_bracketings, parsing_scores
from seqae.tree.corpus import build_tree_corpus
from seqae.tree.loaders import load_tree_corpus
from seqae.tree.parse import load_tree_parser, parse_spans
from seqae.tree.pcfg import CompoundPCFG
from seqae.tree.trees import brackets_to_spans, spans_to_indicators
from seqae.tree.urnng import URNNG
from tests.recipes.resume_checks import (
    Interrupted,
    comparable,
    interrupt_after_first_part,
    interrupt_at_call,
)

TINY = "tree_ae_tiny"
REPO = Path(__file__).resolve().parents[2]
MODELS = {"urnng": URNNG, "compound_pcfg": CompoundPCFG}
SYSTEMS = ("model", "right_branching", "left_branching", "random")


@pytest.fixture(scope="module")
def tree_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny embedded grammar corpus (200 / 20 / 20 sentences)."""
    root = tmp_path_factory.mktemp("tree") / "corpus"
    build_tree_corpus(root, preset="tiny")
    return root


def _run(out: Path, corpus: Path, *more: str) -> dict:
    return run_recipe(
        "tree_ae", config=TINY, overrides=[f"output_dir={out}", f"data.corpus={corpus}", *more]
    )


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, tree_corpus: Path
) -> dict[str, tuple[Path, dict]]:
    """One tiny run of each model."""
    result = {}
    for name in MODELS:
        out = tmp_path_factory.mktemp(name) / "run"
        result[name] = (out, _run(out, tree_corpus, f"model.name={name}"))
    return result


@pytest.mark.parametrize("name", MODELS)
def test_tiny_run_writes_every_output(runs: dict, name: str) -> None:
    out, metrics = runs[name]
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert on_disk["model_name"] == name and on_disk["steps"] == 6
    for path in ("config.yaml", "eval_table.md", "figures/trees.png", "parses_test.txt"):
        assert (out / path).is_file() and (out / path).stat().st_size > 0, path
    for path in ("model/config.json", "model/model.safetensors", "model/vocab.json"):
        assert (out / path).is_file(), path
    assert sorted(p.name for p in (out / "parts").glob("*.json")) == [
        "evaluate_test_step6.json",
        "language_model.json",
        "vocabulary.json",
    ]
    assert any((out / "checkpoints").glob("step_*.pt"))
    assert any((out / "tb").iterdir())
    table = (out / "eval_table.md").read_text()
    for row in (f"| {name} |", "| right-branching |", "| left-branching |", "| random trees |"):
        assert table.count(row) >= 3, row  # F1, by length, by label
    assert "| LSTM language model |" in table


@pytest.mark.parametrize("name", MODELS)
def test_f1_and_baselines_in_metrics(runs: dict, name: str, tree_corpus: Path) -> None:
    """The baselines' scores are those of the corpus's own gold trees, and the model's F1 is
    that of the trees it wrote to parses_test.txt."""
    out, m = runs[name]
    gold = load_tree_corpus(tree_corpus).test_trees
    assert m["n_eval_sentences"] == m["n_scored_sentences"] == len(gold) == 20
    for system in SYSTEMS:
        for level in ("sentence", "corpus"):
            value, (low, high) = m[f"{system}_{level}_f1"], m[f"{system}_{level}_f1_interval"]
            assert 0.0 <= low <= value <= high <= 1.0, (system, level)
        assert [b["low"] for b in m["f1_by_length"][system]] == [2, 11]
        assert set(m["label_recall"][system]) >= {"NP", "VP", "S"}
    for key, kind in (("right_branching", "right"), ("left_branching", "left")):
        expected = parsing_scores(baseline_bracketings(gold, kind), gold, n_boot=None)
        assert m[f"{key}_sentence_f1"] == pytest.approx(expected.sentence_f1.estimate)
        assert m[f"{key}_corpus_f1"] == pytest.approx(expected.corpus_f1.estimate)
    parses = (out / "parses_test.txt").read_text().splitlines()
    predicted = []
    for line, tree in zip(parses, gold, strict=True):
        spans, words = brackets_to_spans(line)
        assert words == tree.leaves()
        predicted.append(Bracketing.from_spans(len(words), spans, inclusive=True))
    ours = parsing_scores(predicted, gold, n_boot=None)
    assert m["model_sentence_f1"] == pytest.approx(ours.sentence_f1.estimate)
    assert m["model_corpus_f1"] == pytest.approx(ours.corpus_f1.estimate)


@pytest.mark.parametrize("name", MODELS)
def test_perplexities_count_the_same_tokens(runs: dict, name: str, tree_corpus: Path) -> None:
    _, m = runs[name]
    test = load_tree_corpus(tree_corpus).test
    assert m["perplexity_tokens"] == sum(len(s) + 1 for s in test)  # words and </s>
    for who in ("model", "lm"):
        nll = m[f"{who}_nll_per_sentence"]
        assert m[f"{who}_perplexity"] == pytest.approx(
            math.exp(nll * len(test) / m["perplexity_tokens"])
        )
        assert 1.0 < m[f"{who}_perplexity"] < 10 * m["vocab_size"]
    assert m["iw_samples"] == 4
    assert m["parts"]["language_model"]["steps"] == 10
    assert m["parts"]["vocabulary"]["size"] == m["vocab_size"]


@pytest.mark.parametrize("name", MODELS)
def test_model_folder_loads_and_parses(
    runs: dict, name: str, tree_corpus: Path, tmp_path: Path
) -> None:
    """run_dir/model is what seqae.load_pretrained and `seqae parse` read; the command gives
    the recipe's own trees, with the input's words as leaves."""
    out, m = runs[name]
    model = load_pretrained(out / "model")
    assert isinstance(model, MODELS[name])
    parser = load_tree_parser(out / "model")
    assert len(parser.vocab) == m["vocab_size"] and parser.max_length == 12
    trees = tmp_path / "trees.txt"
    args = ["parse", "--model", str(out / "model"), "--input", str(tree_corpus / "test.txt")]
    assert main([*args, "--out", str(trees), "--batch", "8"]) == 0  # eval.batch_size
    got = trees.read_text().splitlines()
    assert got == (out / "parses_test.txt").read_text().splitlines()
    sentences = (tree_corpus / "test.txt").read_text().splitlines()
    assert [brackets_to_spans(t)[1] for t in got] == [s.split() for s in sentences]


def test_config_typo_is_a_config_error(
    tmp_path: Path, tree_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match=r"train\.warmup_stpes"):
        _run(tmp_path / "typo", tree_corpus, "train.warmup_stpes=3")
    with pytest.raises(ConfigError, match="model.name"):
        _run(tmp_path / "bad", tree_corpus, "model.name=rnng")
    with pytest.raises(ConfigError, match="data.test_trees needs data.test"):
        _run(
            tmp_path / "bad",
            tree_corpus,
            *("data.train=x.txt", "data.valid=v.txt", "eval.split=valid", "data.test_trees=t"),
        )
    assert not (tmp_path / "typo").exists() and not (tmp_path / "bad").exists()
    args = ["run", "tree_ae", "--config", TINY, f"output_dir={tmp_path / 'c'}"]
    assert main([*args, "train.samples=0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.samples" in err[0]


def test_interrupted_in_the_loop_then_resumed_matches(
    runs: dict, tree_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, full = runs["urnng"]
    recipe = load_recipe(find_recipe("tree_ae"))
    # check_finite runs once per training step, before the update: stop in the 4th step
    restore = interrupt_at_call(monkeypatch, recipe, "check_finite", call=4)
    out = tmp_path / "part"
    with pytest.raises(Interrupted):
        _run(out, tree_corpus)
    assert not (out / "metrics.json").exists()
    restore()
    resumed = _run(out, tree_corpus, "resume=true")
    assert comparable(resumed) == comparable(full)


def test_interrupted_between_parts_then_resumed_matches(
    runs: dict, tree_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, full = runs["compound_pcfg"]
    interrupt_after_first_part(monkeypatch)
    out = tmp_path / "part"
    with pytest.raises(Interrupted):
        _run(out, tree_corpus, "model.name=compound_pcfg")
    monkeypatch.undo()
    assert (out / "parts" / "vocabulary.json").is_file()
    assert not (out / "parts" / "language_model.json").exists()
    resumed = _run(out, tree_corpus, "model.name=compound_pcfg", "resume=true")
    assert comparable(resumed) == comparable(full)


def _user_files(tmp_path: Path, corpus: Path) -> dict[str, Path]:
    """The tiny corpus as a user's files: training sentences with punctuation and one
    over-long sentence, test sentences with unlabeled gold trees."""
    gold = load_tree_corpus(corpus).test_trees
    files = {name: tmp_path / f"{name}.txt" for name in ("train", "test", "test_trees")}
    train = (corpus / "train.txt").read_text().splitlines()
    long_line = " ".join([train[0]] * 5)  # more than data.max_length (12) words
    first, *rest = train[1].split()
    punctuated = " ".join([first, ",", *rest, "."])
    files["train"].write_text("\n".join([*train, long_line, punctuated]) + "\n")
    files["test"].write_text("".join(" ".join(t.leaves()) + "\n" for t in gold))
    files["test_trees"].write_text("".join(t.to_string(style="unlabeled") + "\n" for t in gold))
    return files


def test_user_files(runs: dict, tree_corpus: Path, tmp_path: Path) -> None:
    """data.train/test/test_trees instead of the corpus: over-long training sentences are
    skipped with a count, punctuation dropped, the unlabeled gold trees scored (no labels)."""
    _, corpus_run = runs["urnng"]
    files = _user_files(tmp_path, tree_corpus)
    m = _run(
        tmp_path / "run",
        tree_corpus,
        f"data.train={files['train']}",
        f"data.test={files['test']}",
        f"data.test_trees={files['test_trees']}",
        "data.tree_style=unlabeled",
        "data.drop_punctuation=true",
    )
    assert m["skipped_long_train"] == 1 and m["n_train"] == 201
    assert m["parts"]["vocabulary"]["size"] == corpus_run["vocab_size"]  # "," and "." dropped
    assert m["n_scored_sentences"] == 20 and "label_recall" not in m
    assert m["right_branching_sentence_f1"] == corpus_run["right_branching_sentence_f1"]


def test_bad_user_files_give_one_line_errors(
    tree_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _user_files(tmp_path, tree_corpus)
    base = ["run", "tree_ae", "--config", TINY, f"data.train={files['train']}"]
    base.append(f"data.test={files['test']}")

    def error(*more: str) -> str:
        out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        assert main([*base, f"output_dir={out}", *more]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("seqae: error: "), err
        assert not out.exists()  # refused before the run folder is made
        return err[0]

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"the dog slept\nthe \xfe cat\n")
    line = error(f"data.train={bad}")
    assert str(bad) in line and "line 2" in line and "UTF-8" in line
    line = error(f"data.train={tmp_path / 'missing.txt'}")
    assert "data.train" in line and "no such file" in line
    trees = tmp_path / "trees.txt"
    lines = files["test_trees"].read_text().splitlines()
    trees.write_text("\n".join(["((the dog) slept)", *lines[1:]]) + "\n")
    line = error(f"data.test_trees={trees}", "data.tree_style=unlabeled")
    assert "line 1" in line and "differs from the tree" in line
    trees.write_text("((the dog) slept\n")
    line = error(f"data.test_trees={trees}", "data.tree_style=unlabeled")
    assert str(trees) in line and "line 1" in line
    line = error("data.max_length=2")
    assert "no training sentences left" in line


@pytest.mark.slow
def test_torchrun_two_processes(runs: dict, tree_corpus: Path, tmp_path: Path, torchrun) -> None:
    """Two CPU processes under torchrun: the vocabulary and the language model are rank 0's
    (the same as a single process's), then each rank trains on its shard under DDP."""
    _, single = runs["urnng"]
    out = tmp_path / "ddp"
    metrics = torchrun("tree_ae", TINY, out, f"data.corpus={tree_corpus}")
    assert metrics["world_size"] == 2 and metrics["steps"] == single["steps"]
    assert metrics["parts"] == single["parts"]
    assert 0.0 <= metrics["model_sentence_f1"] <= 1.0
    # each rank read its own shard: other batches than one process's, other weights
    ddp = load_pretrained(out / "model").state_dict()
    one = load_pretrained(runs["urnng"][0] / "model").state_dict()
    assert any(not torch.equal(ddp[k], one[k]) for k in one)


# ---------------------------------------------------------------------------------------------
# URNNG from a teacher's trees (teacher.from_run, teacher.steps)
# ---------------------------------------------------------------------------------------------
def _random_tree(i: int, j: int, rng: random.Random) -> list[tuple[int, int]]:
    if i == j:
        return [(i, i)]
    k = rng.randrange(i, j)
    return [(i, j), *_random_tree(i, k, rng), *_random_tree(k + 1, j, rng)]


def test_supervised_objective_learns_the_given_trees() -> None:
    recipe = load_recipe(find_recipe("tree_ae"))
    torch.manual_seed(0)
    model = URNNG(vocab_size=12, embed_dim=16, hidden_dim=16, q_embed_dim=16, q_hidden_dim=16)
    rng = random.Random(1)
    tokens = torch.randint(4, 12, (4, 7), generator=torch.Generator().manual_seed(2))
    lengths = torch.full((4,), 7)
    spans = [_random_tree(0, 6, rng) for _ in range(4)]
    trees = spans_to_indicators(spans, [7] * 4)
    assert not torch.equal(model.parse(tokens, lengths, method="argmax"), trees)
    objective = recipe.TreeObjective(model, samples=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    model.train()
    for _ in range(150):
        loss, logged = objective(tokens, lengths, 1.0, trees)
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert "supervised_log_q" in logged and loss.item() < first
    model.eval()
    # the inference network's most probable trees are the given ones, each nearly certain
    assert torch.equal(model.parse(tokens, lengths, method="argmax"), trees)
    assert model.posterior(tokens, lengths).log_prob(trees).min() > math.log(0.5)


@pytest.fixture(scope="module")
def taught(runs: dict, tree_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A tiny URNNG run whose first 3 of 6 steps learn the tiny compound PCFG run's trees."""
    teacher, _ = runs["compound_pcfg"]
    out = tmp_path_factory.mktemp("taught") / "run"
    overrides = (f"teacher.from_run={teacher}", "teacher.steps=3")
    return out, _run(out, tree_corpus, *overrides), overrides


def test_teacher_trees_are_the_teachers_parses(taught: tuple, runs: dict) -> None:
    out, metrics, _ = taught
    teacher, _ = runs["compound_pcfg"]
    recipe = load_recipe(find_recipe("tree_ae"))
    cfg = json.loads((out / "run.json").read_text())["config"]
    data = recipe.load_data(
        {k.removeprefix("data."): v for k, v in cfg.items() if k.startswith("data.")},
        announce=False,
    )
    parser = load_tree_parser(teacher / "model")
    expected = parse_spans(parser.model, parser.vocab, data.train)
    lines = (out / "parts" / "teacher_trees" / "trees.txt").read_text().splitlines()
    assert [sorted(brackets_to_spans(line)[0]) for line in lines] == [
        sorted(tree) for tree in expected
    ]
    assert recipe.read_teacher_trees(out / "parts" / "teacher_trees", data.train) == [
        brackets_to_spans(line)[0] for line in lines
    ]
    summary = metrics["parts"]["teacher_trees"]
    assert summary["model_type"] == "compound_pcfg" and summary["sentences"] == len(data.train)
    assert metrics["teacher_steps"] == 3
    for key in ("supervised_valid_sentence_f1", "valid_sentence_f1"):
        assert 0.0 <= metrics[key] <= 1.0
    # the supervised steps changed the result: the same run without them differs
    assert metrics["model_sentence_f1"] != runs["urnng"][1]["model_sentence_f1"] or (
        metrics["model_perplexity"] != runs["urnng"][1]["model_perplexity"]
    )


def test_taught_run_interrupted_in_the_supervised_steps_then_resumed_matches(
    taught: tuple, tree_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, full, overrides = taught
    recipe = load_recipe(find_recipe("tree_ae"))
    restore = interrupt_at_call(monkeypatch, recipe, "check_finite", call=3)
    out = tmp_path / "part"
    with pytest.raises(Interrupted):
        _run(out, tree_corpus, *overrides)
    restore()
    resumed = _run(out, tree_corpus, *overrides, "resume=true")
    assert comparable(resumed, drop=("train_seconds", "path", "from_run")) == comparable(
        full, drop=("train_seconds", "path", "from_run")
    )


def test_bad_teacher_settings_give_one_line_errors(
    runs: dict, tree_corpus: Path, tmp_path: Path
) -> None:
    teacher, _ = runs["compound_pcfg"]

    def refused(match: str, *more: str) -> None:
        with pytest.raises(ConfigError, match=match):
            _run(tmp_path / "bad", tree_corpus, *more)
        assert not (tmp_path / "bad").exists()

    refused("go together", f"teacher.from_run={teacher}")
    refused("go together", "teacher.steps=2")
    refused(
        r"teacher.steps must be in \[0, train.steps=6\]",
        f"teacher.from_run={teacher}",
        "teacher.steps=7",
    )
    refused(
        "model.name is 'compound_pcfg'",
        f"teacher.from_run={teacher}",
        "teacher.steps=2",
        "model.name=compound_pcfg",
    )
    refused(
        "not a readable tree_ae run", f"teacher.from_run={tmp_path / 'none'}", "teacher.steps=2"
    )
    refused(
        r"other data \(data.min_count differ",
        f"teacher.from_run={teacher}",
        "teacher.steps=2",
        "data.min_count=2",
    )
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(teacher / "config.yaml", unfinished / "config.yaml")
    refused("has no model/ folder", f"teacher.from_run={unfinished}", "teacher.steps=2")
