"""The summary_ppo recipe on its tiny config, from a tiny summary_ae run: outputs, the saved
policy, resume, SubprocVecEnv, and the refusal of a bad ``from_run``. Needs the text extra and
this machine's apt English descriptions (Translation-en)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from seqae.extras import missing_modules

if missing_modules("text"):
    pytest.skip("seqae's text extra is not installed", allow_module_level=True)

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from seqae.cli import find_recipe, load_recipe, main, run_recipe  # noqa: E402
from seqae.config import ConfigError, load_config  # noqa: E402
from seqae.text.discriminator import PrefixDiscriminator  # noqa: E402
from seqae.text.env import rollout_summaries  # noqa: E402
from seqae.text.evaluation import article_words  # noqa: E402
from seqae.text.loaders import load_text_corpus  # noqa: E402
from seqae.text.reconstructor import Reconstructor  # noqa: E402
from seqae.text.tokenizer import WordTokenizer, as_written  # noqa: E402
from tests.recipes.resume_checks import Interrupted, comparable, interrupt_at_call  # noqa: E402

TINY = "summary_ppo_tiny"
SYSTEMS = ("ppo", "reinforce_summary_ae", "warm_start")
#: What differs between two runs of one config in different folders.
DROP = ("train_seconds", "path", "from_run")


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory: pytest.TempPathFactory, text_corpus: Path) -> Path:
    """A finished summary_ae_tiny run (with its parts/language_model)."""
    out = tmp_path_factory.mktemp("summary_ae") / "run"
    run_recipe(
        "summary_ae",
        config="summary_ae_tiny",
        overrides=[f"output_dir={out}", f"data.corpus={text_corpus}"],
    )
    return out


def _run(out: Path, from_run: Path, *more: str) -> dict:
    return run_recipe(
        "summary_ppo", config=TINY, overrides=[f"output_dir={out}", f"from_run={from_run}", *more]
    )


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory: pytest.TempPathFactory, ae_run: Path) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("summary_ppo") / "run"
    return out, _run(out, ae_run)


class _Finished(NamedTuple):
    """What the tests read of a finished run: its recipe module, config, source run,
    tokenizer and corpus."""

    recipe: Any
    cfg: dict
    source: Any
    tok: WordTokenizer
    corpus: Any


def _finished(out: Path) -> _Finished:
    recipe = load_recipe(find_recipe("summary_ppo"))
    cfg = load_config(out / "config.yaml")
    source = recipe.read_source(cfg)
    tok = WordTokenizer.load(source.dir / "parts" / "tokenizer")
    return _Finished(recipe, cfg, source, tok, load_text_corpus(source.cfg["data"]))


def _saved_ppo(recipe: Any, cfg: dict, spec: Any, run: Path) -> Any:
    """A PPO rebuilt from the run's config with its saved models/policy.safetensors."""
    model = recipe.build_ppo(cfg, recipe.make_vec_env(cfg, spec))
    model.policy.load_state_dict(load_file(run / "models" / "policy.safetensors"))
    return model


def _sb3_summaries(
    model: Any, spec: Any, tok: WordTokenizer, articles: list[str], limit: int, max_words: int
) -> list[str]:
    """The stable-baselines3 policy's own deterministic summaries (``predict``) of the
    articles (read up to ``limit`` words), cut to ``max_words`` words and written as the
    articles write them: what the exported policy folder must reproduce."""
    words = [article_words(tok, text, limit) for text in articles]
    env = dataclasses.replace(
        spec, articles=tuple(tuple(w) for w in words), with_reward=False, monitor=False
    ).build()
    kept = rollout_summaries(env, lambda obs: model.predict(obs, deterministic=True)[0])
    return [
        as_written(text, tok.word_offsets(text, max_words=limit), k[:max_words])
        for text, k in zip(articles, kept, strict=True)
    ]


def _assert_same_policy(run: Path, other: Path) -> None:
    ours = load_file(run / "models" / "policy.safetensors")
    theirs = load_file(other / "models" / "policy.safetensors")
    assert ours.keys() == theirs.keys()
    for name, tensor in ours.items():
        assert torch.equal(tensor, theirs[name]), name


LEARNING = {"discriminator": PrefixDiscriminator, "reconstructor": Reconstructor}


def _reward_models(run: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The state of each reward model a run saved in models/."""
    return {
        name: kind.from_pretrained(run / "models" / name).state_dict()
        for name, kind in LEARNING.items()
    }


def _assert_same_reward_models(run: Path, other: Path) -> None:
    ours, theirs = _reward_models(run), _reward_models(other)
    for name, state in ours.items():
        for key, tensor in state.items():
            assert torch.equal(tensor, theirs[name][key]), (name, key)


def test_reward_models_keep_learning_against_the_policy(
    ppo_run: tuple[Path, dict], ae_run: Path, tmp_path: Path
) -> None:
    """discriminator.learns and reconstructor.learns (the tiny config): both move away from
    summary_ae's, are saved, and the environments are rewarded by them (the policy learns
    differently from a run whose reward models stay summary_ae's); their losses and the
    discriminator's accuracy are logged."""
    out, _ = ppo_run
    learned = _reward_models(out)
    for name, kind in LEARNING.items():
        start = kind.from_pretrained(ae_run / "models" / name).state_dict()
        moved = [key for key, t in learned[name].items() if not torch.equal(t, start[key])]
        assert len(moved) > len(start) // 2, (name, moved)
    frozen = tmp_path / "frozen"
    _run(frozen, ae_run, "discriminator.learns=false", "reconstructor.learns=false")
    assert not (frozen / "models" / "discriminator").exists()
    assert not (frozen / "models" / "reconstructor").exists()
    ours = load_file(out / "models" / "policy.safetensors")
    theirs = load_file(frozen / "models" / "policy.safetensors")
    assert any(not torch.equal(ours[name], theirs[name]) for name in ours)
    events = b"".join(p.read_bytes() for p in (out / "tb").rglob("events.*"))
    for tag in (b"discriminator/accuracy", b"discriminator/loss", b"reconstructor/loss"):
        assert tag in events, tag


@pytest.mark.parametrize("term", ["prefixes", "mean", "whole"])
def test_discriminator_term_reaches_the_environment_s_reward(
    ppo_run: tuple[Path, dict], term: str
) -> None:
    """discriminator.term goes through the environment spec (and so into every worker) to
    the reward the environments compute."""
    out, _ = ppo_run
    run = _finished(out)
    cfg = {**run.cfg, "discriminator": {**run.cfg["discriminator"], "term": term}}
    spec = run.recipe.env_spec(cfg, run.source, [["a", "word"]])
    assert spec.discriminator_term == term
    assert spec.model_reward(run.tok).discriminator_term == term


def test_tiny_run_writes_every_output(ppo_run: tuple[Path, dict]) -> None:
    out, metrics = ppo_run
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    for system in SYSTEMS:
        for variant in ("rouge1", "rouge2", "rouge_l"):
            low, high = on_disk[f"{system}_{variant}_interval"]
            assert 0.0 <= low <= on_disk[f"{system}_{variant}"] <= high <= 1.0, (system, variant)
        assert 0 <= on_disk[f"{system}_mean_words"] <= 8  # summary_ae's eval.max_words
        terms = [
            on_disk[f"{system}_reward_{t}"] for t in ("reconstruction", "discriminator", "length")
        ]
        assert on_disk[f"{system}_reward_total"] == pytest.approx(sum(terms))
    assert on_disk["updates"] == 4 and on_disk["timesteps"] == 512  # 512 steps of 2 x 64
    assert on_disk["n_test"] == 40 and on_disk["train_episode_reward"] < 0
    table = (out / "eval_table.md").read_text()
    for row in ("| PPO |", "| REINFORCE (summary_ae) |", "| warm start |", "| Lead-N |"):
        assert row in table
    assert "## Mean reward on the test articles" in table
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*.pt")) == [
        "step_00000002.pt",
        "step_00000004.pt",
    ]
    assert any((out / "tb").iterdir())


def test_reinforce_and_warm_start_rows_are_summary_ae_s(
    ppo_run: tuple[Path, dict], ae_run: Path
) -> None:
    """The REINFORCE and warm-start rows score summary_ae's own greedy summaries: the same
    ROUGE as summary_ae's evaluation gives them."""
    _, metrics = ppo_run
    ae = json.loads((ae_run / "metrics.json").read_text())
    for variant in ("rouge1", "rouge2", "rouge_l"):
        assert metrics[f"reinforce_summary_ae_{variant}"] == pytest.approx(ae[f"model_{variant}"])
        assert metrics[f"warm_start_{variant}"] == pytest.approx(ae[f"warm_start_{variant}"])


def test_saved_policy_writes_the_evaluated_summaries(ppo_run: tuple[Path, dict]) -> None:
    """models/policy.safetensors, loaded into a PPO rebuilt from the config, gives the
    evaluated policy: the same test summaries (same length, same reward)."""
    out, metrics = ppo_run
    recipe, cfg, source, tok, corpus = _finished(out)
    spec = recipe.env_spec(cfg, source, [["a"]])
    model = _saved_ppo(recipe, cfg, spec, out)
    data, e = source.cfg["data"], source.cfg["eval"]
    articles = [p.article for p in corpus.test]
    limit = data["max_article_words"]
    words = [article_words(tok, text, limit) for text in articles]
    texts = _sb3_summaries(model, spec, tok, articles, limit, e["max_words"])
    rewards = recipe.mean_rewards(spec, tok, words, {"PPO": texts}, batch=40)["PPO"]
    assert rewards["total"] == pytest.approx(metrics["ppo_reward_total"], abs=1e-5)
    n_words = sum(len(t.split()) for t in texts) / len(texts)
    assert n_words == pytest.approx(metrics["ppo_mean_words"])


def test_interrupted_then_resumed_matches(
    ppo_run: tuple[Path, dict],
    ae_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Stopped in its 4th update (after the checkpoint of update 2), resumed: it runs updates
    3 and 4 only and ends as the uninterrupted run. A resume from a summary_ae run that was run
    again since is refused."""
    _, full = ppo_run
    source = tmp_path / "ae"
    shutil.copytree(ae_run, source)
    recipe = load_recipe(find_recipe("summary_ppo"))
    restore = interrupt_at_call(monkeypatch, recipe, "ppo_update", call=4)
    out = tmp_path / "part"
    with pytest.raises(Interrupted):
        _run(out, source)
    assert not (out / "metrics.json").exists()
    restore()

    record = json.loads((source / "run.json").read_text())
    (source / "run.json").write_text(json.dumps({**record, "updated": "later"}))
    with pytest.raises(ConfigError, match="was run again"):
        _run(out, source, "resume=true")
    (source / "run.json").write_text(json.dumps(record))

    updates: list[int] = []
    real = recipe.ppo_update
    monkeypatch.setattr(
        recipe,
        "ppo_update",
        lambda cfg, model, update, cb: (updates.append(update), real(cfg, model, update, cb)),
    )
    capsys.readouterr()
    resumed = _run(out, source, "resume=true")
    assert "resumed from step_00000002.pt" in capsys.readouterr().out
    assert updates == [2, 3]
    assert comparable(resumed, drop=DROP) == comparable(full, drop=DROP)
    _assert_same_policy(out, ppo_run[0])
    _assert_same_reward_models(out, ppo_run[0])


def test_subprocess_environments_give_the_same_run(
    ppo_run: tuple[Path, dict], ae_run: Path, tmp_path: Path
) -> None:
    _, full = ppo_run
    metrics = _run(tmp_path / "subproc", ae_run, "env.vectorize=subproc")
    assert comparable(metrics, drop=DROP) == comparable(full, drop=DROP)
    _assert_same_policy(tmp_path / "subproc", ppo_run[0])


def _fake_run(folder: Path, **record: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(record))
    return folder


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing", "is not a folder"),
        (
            lambda tmp: _fake_run(tmp / "other", recipe="vae_digits", status="finished"),
            "no summary_ae run",
        ),
        (
            lambda tmp: _fake_run(tmp / "busy", recipe="summary_ae", status="interrupted"),
            "interrupted, not finished",
        ),
        (
            lambda tmp: _fake_run(tmp / "bare", recipe="summary_ae", status="finished"),
            "lacks config.yaml",
        ),
    ],
)
def test_bad_from_run_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, message: str
) -> None:
    from_run = make(tmp_path)  # type: ignore[operator]
    out = tmp_path / "out"
    args = ["run", "summary_ppo", "--config", TINY, f"from_run={from_run}", f"output_dir={out}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seqae: error: from_run") and message in err[0]
    assert not out.exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("env.actions=phrases", "env.actions must be one of words, span, got 'phrases'"),
        ("eval.split=train", "eval.split must be test, valid or null, got 'train'"),
        (
            "discriminator.term=sum",
            "discriminator.term must be one of prefixes, mean, whole, got 'sum'",
        ),
    ],
)
def test_bad_settings_are_refused_in_one_line(
    ae_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, message: str
) -> None:
    out = tmp_path / "out"
    args = ["run", "summary_ppo", "--config", TINY, f"from_run={ae_run}", f"output_dir={out}"]
    assert main([*args, override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()


def test_span_policy_on_the_validation_pairs(ae_run: Path, tmp_path: Path) -> None:
    """env.actions=span eval.split=valid: evaluated on the validation pairs, and every summary
    the saved policy writes is one contiguous run of its article's words."""
    out = tmp_path / "span"
    metrics = _run(out, ae_run, "env.actions=span", "eval.split=valid")
    recipe, cfg, source, tok, corpus = _finished(out)
    table = (out / "eval_table.md").read_text()
    assert metrics["n_test"] == len(corpus.valid) and metrics["eval_split"] == "valid"
    assert f"{len(corpus.valid)} valid pairs. ROUGE F1" in table
    assert any(p.article[:60] in table for p in corpus.valid)  # the examples
    assert not any(p.article[:60] in table for p in corpus.test)
    limit = source.cfg["data"]["max_article_words"]
    words = [article_words(tok, p.article, limit) for p in corpus.valid]
    spec = recipe.env_spec(cfg, source, words)
    model = _saved_ppo(recipe, cfg, spec, out)
    env = dataclasses.replace(spec, with_reward=False, monitor=False).build()
    kept = rollout_summaries(env, lambda obs: model.predict(obs, deterministic=True)[0])
    assert any(len(k) > 1 for k in kept)
    for k in kept:
        assert not k or k == list(range(k[0], k[0] + len(k)))


def test_model_folder_summarizes_as_evaluated(
    ppo_run: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """output_dir/model is a policy summarizer folder: `seqae summarize` with it writes the
    summaries the evaluation scored (those of the stable-baselines3 policy), without
    stable-baselines3; beam search and longer articles than its limit are refused."""
    out, _ = ppo_run
    recipe, cfg, source, tok, corpus = _finished(out)
    limit = source.cfg["data"]["max_article_words"]
    words = [article_words(tok, p.article, limit) for p in corpus.test]
    spec = recipe.env_spec(cfg, source, words)
    model = _saved_ppo(recipe, cfg, spec, out)
    evaluated = _sb3_summaries(model, spec, tok, [p.article for p in corpus.test], limit, 8)
    articles = tmp_path / "articles.txt"
    articles.write_text("\n".join(p.article for p in corpus.test) + "\n", encoding="utf-8")
    summaries = tmp_path / "summaries.txt"
    args = ["summarize", "--model", str(out / "model"), "--input", str(articles)]
    assert main([*args, "--out", str(summaries)]) == 0
    assert summaries.read_text(encoding="utf-8").splitlines() == evaluated
    assert any(len(s.split()) > 1 for s in evaluated)
    # a span, written as its article writes it: a verbatim piece of the article
    assert all(s in p.article for s, p in zip(evaluated, corpus.test, strict=True))
    assert any(s != s.lower() for s in evaluated)  # the article's case, not the tokenizer's
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "beam.txt"), "--beam", "2"]) == 2
    assert main([*args, "--out", str(tmp_path / "long.txt"), "--max-article-words", "500"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--beam 2" in err[0] and "at most 30 words" in err[1]
    assert not (tmp_path / "beam.txt").exists() and not (tmp_path / "long.txt").exists()
