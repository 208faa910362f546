"""SummaryPolicy (seqae.text.policy): the actor of summary_ppo's policy as a saved model, its
agreement with stable-baselines3's deterministic policy, its summaries, and the policy
summarizer folder that ``seqae summarize`` reads (its bad cases in one line)."""

from __future__ import annotations

from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

from seqae.extras import missing_modules

if missing_modules("text"):
    pytest.skip("seqae's text extra is not installed", allow_module_level=True)

from stable_baselines3 import PPO  # noqa: E402

from seqae.cli import main  # noqa: E402
from seqae.core.saving import SavedModelError, read_model_config  # noqa: E402
from seqae.text.env import GeneratorEncoder, SummaryEnv, rollout_summaries  # noqa: E402
from seqae.text.generator import PointerGenerator  # noqa: E402
from seqae.text.policy import ENCODER_FOLDER, SummaryPolicy, policy_summaries  # noqa: E402
from seqae.text.summarize import load_summarizer, save_policy_summarizer  # noqa: E402
from seqae.text.tokenizer import WordTokenizer  # noqa: E402
from tests.text.summary_data import ARTICLES, TEXTS  # noqa: E402

MAX_ARTICLE_WORDS = 30


@pytest.fixture(scope="module")
def tok() -> WordTokenizer:
    return WordTokenizer.train(TEXTS, vocab_size=50, min_frequency=1)


@pytest.fixture(scope="module")
def encoder(tok: WordTokenizer) -> GeneratorEncoder:
    torch.manual_seed(0)
    ids = {"pad_id": tok.pad_id, "unk_id": tok.unk_id, "bos_id": tok.bos_id, "eos_id": tok.eos_id}
    return GeneratorEncoder(
        PointerGenerator(vocab_size=tok.vocab_size, emb_dim=8, hidden=8, **ids), tok
    )


def _words(tok: WordTokenizer) -> list[list[str]]:
    return [tok.tokenize(a, max_words=MAX_ARTICLE_WORDS).words for a in ARTICLES]


def _sb3_policy(env: gymnasium.Env, seed: int = 0) -> PPO:
    """An untrained stable-baselines3 PPO with random weights spread enough to act on."""
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", policy_kwargs={"net_arch": [16, 8]})
    with torch.no_grad():
        for p in model.policy.parameters():
            p.normal_(0.0, 1.0)
    return model


def _env(tok: WordTokenizer, encoder: GeneratorEncoder, actions: str) -> SummaryEnv:
    return SummaryEnv(
        articles=_words(tok),
        encoder=encoder,
        max_words=6,
        max_article_words=MAX_ARTICLE_WORDS,
        actions=actions,
    )


@pytest.mark.parametrize("actions", ["span", "words"])
def test_the_actor_acts_as_stable_baselines3_s_deterministic_policy(
    tok: WordTokenizer, encoder: GeneratorEncoder, actions: str
) -> None:
    env = _env(tok, encoder, actions)
    model = _sb3_policy(env)
    policy = SummaryPolicy.from_sb3(
        model.policy, actions=actions, max_words=6, max_article_words=MAX_ARTICLE_WORDS
    )
    obs = np.random.default_rng(0).uniform(-1, 1, (256, env.observation_space.shape[0]))
    obs = obs.astype(np.float32)
    ours = policy.act(obs)
    assert 0 < ours.sum() < len(ours)  # both actions occur: the comparison means something
    np.testing.assert_array_equal(ours, model.predict(obs, deterministic=True)[0])
    # and so the same summaries, in the same environment
    sb3 = rollout_summaries(env, lambda o: model.predict(o, deterministic=True)[0])
    assert rollout_summaries(env, policy.act) == sb3
    texts = policy_summaries(policy, encoder, _words(tok), max_words=4)
    assert [len(t.split()) <= 4 for t in texts] == [True] * len(texts)
    # given the texts, the same words as the articles write them
    written = [(a, tok.word_offsets(a, max_words=MAX_ARTICLE_WORDS)) for a in ARTICLES]
    as_in_article = policy_summaries(policy, encoder, _words(tok), max_words=4, written=written)
    assert [tok.tokenize(t).words for t in as_in_article] == [tok.tokenize(t).words for t in texts]
    if actions == "span":
        assert all(t in a for t, a in zip(as_in_article, ARTICLES, strict=True))
    with pytest.raises(ValueError, match="written articles"):
        policy_summaries(policy, encoder, _words(tok), max_words=4, written=written[:1])


def test_saved_and_loaded_in_the_project_format(
    tok: WordTokenizer, encoder: GeneratorEncoder, tmp_path: Path
) -> None:
    env = _env(tok, encoder, "span")
    policy = SummaryPolicy.from_sb3(
        _sb3_policy(env).policy, actions="span", max_words=6, max_article_words=MAX_ARTICLE_WORDS
    )
    policy.save_pretrained(tmp_path / "p")
    assert read_model_config(tmp_path / "p").model_type == "summary_policy"
    loaded = SummaryPolicy.from_pretrained(tmp_path / "p")
    assert loaded.config == policy.config
    for a, b in zip(policy.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(SavedModelError, match="summary_policy"):
        PointerGenerator.from_pretrained(tmp_path / "p")


def test_bad_policies_are_refused() -> None:
    good = {
        "obs_dim": 4,
        "net_arch": [8],
        "actions": "span",
        "max_words": 5,
        "max_article_words": 9,
    }
    for bad in ({"net_arch": []}, {"max_words": 0}, {"actions": "phrases"}):
        with pytest.raises(ValueError, match="SummaryPolicy"):
            SummaryPolicy(**{**good, **bad})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tanh layers with two actions"):
        SummaryPolicy.from_sb3(
            torch.nn.Linear(3, 2), actions="span", max_words=5, max_article_words=9
        )


def test_policy_summarizer_folder(
    tok: WordTokenizer,
    encoder: GeneratorEncoder,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """seqae summarize reads a policy folder: the span policy's summaries, one per line (an
    empty line gives an empty summary); a policy whose encoder/ is from another run is refused
    in one line."""
    env = _env(tok, encoder, "span")
    policy = SummaryPolicy.from_sb3(
        _sb3_policy(env).policy, actions="span", max_words=6, max_article_words=MAX_ARTICLE_WORDS
    )
    folder = tmp_path / "model"
    save_policy_summarizer(
        folder, policy, encoder.generator, tok, max_article_words=MAX_ARTICLE_WORDS, max_words=5
    )
    summarizer = load_summarizer(folder)
    assert summarizer.policy is not None and summarizer.max_words == 5
    articles = tmp_path / "in.txt"
    articles.write_text(ARTICLES[0] + "\n\n" + ARTICLES[1] + "\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    assert (
        main(["summarize", "--model", str(folder), "--input", str(articles), "--out", str(out)])
        == 0
    )
    lines = out.read_text(encoding="utf-8").splitlines()
    words = _words(tok)
    assert lines == [
        *policy_summaries(policy, encoder, words[:1], max_words=5),
        "",
        *policy_summaries(policy, encoder, words[1:2], max_words=5),
    ]
    for line, article in ((lines[0], words[0]), (lines[2], words[1])):
        said = tok.tokenize(line).words
        starts = [i for i in range(len(article)) if article[i : i + len(said)] == said]
        assert said and starts, (line, article)  # one contiguous run of the article's words

    torch.manual_seed(1)
    other = PointerGenerator(vocab_size=tok.vocab_size, emb_dim=8, hidden=12)
    other.save_pretrained(folder / ENCODER_FOLDER)
    capsys.readouterr()
    assert (
        main(["summarize", "--model", str(folder), "--input", str(articles), "--out", str(out)])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "its policy reads" in err[0] and "different runs" in err[0]
