"""SummaryEnv (seqae.text.env): both environment checkers, the episode's rules, the reward,
vectorised stepping, batched rollouts, and PPO learning a toy reward."""

from __future__ import annotations

import pickle
import random
import warnings
from pathlib import Path

import numpy as np
import pytest

from seqae.extras import missing_modules

if missing_modules("text"):
    pytest.skip("seqae's text extra is not installed", allow_module_level=True)

import torch  # noqa: E402
from gymnasium.utils.env_checker import check_env as gymnasium_check_env  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.env_checker import check_env as sb3_check_env  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402
from stable_baselines3.common.logger import Logger  # noqa: E402
from stable_baselines3.common.monitor import Monitor  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

from seqae.text.discriminator import PrefixDiscriminator  # noqa: E402
from seqae.text.env import (  # noqa: E402
    N_SCALARS,
    GeneratorEncoder,
    KeywordReward,
    ModelReward,
    SummaryEnv,
    SummaryEnvSpec,
    rollout_summaries,
)
from seqae.text.generator import PointerGenerator  # noqa: E402
from seqae.text.reconstructor import Reconstructor  # noqa: E402
from seqae.text.rewards import SummaryReward  # noqa: E402
from seqae.text.tokenizer import WordTokenizer  # noqa: E402

WORDS = [f"w{i}" for i in range(10)]
GOOD = WORDS[:5]
REWARD = {"discriminator_weight": 1.0, "gamma": 0.9, "target_length": 4, "length_weight": 0.2}


def _articles(n: int, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    return [[rng.choice(WORDS) for _ in range(rng.randint(6, 12))] for _ in range(n)]


@pytest.fixture(scope="module")
def parts() -> dict:
    """A tokenizer and tiny untrained models (with an out-of-vocabulary word in the texts)."""
    torch.manual_seed(0)
    articles = _articles(64)
    tok = WordTokenizer.train(
        [" ".join(a) for a in articles], vocab_size=14, min_frequency=1
    )  # 4 special tokens + w0..w9
    articles[0] = [*articles[0][:4], "zebra", *articles[0][4:]]  # not in the vocabulary
    ids = {"pad_id": tok.pad_id, "unk_id": tok.unk_id, "bos_id": tok.bos_id, "eos_id": tok.eos_id}
    generator = PointerGenerator(vocab_size=tok.vocab_size, emb_dim=8, hidden=8, **ids)
    reconstructor = Reconstructor(vocab_size=tok.vocab_size, emb_dim=8, hidden=8, **ids)
    discriminator = PrefixDiscriminator(
        vocab_size=tok.vocab_size,
        pad_id=tok.pad_id,
        unk_id=tok.unk_id,
        embedding_dim=8,
        hidden_size=8,
    )
    reward = ModelReward(
        tokenizer=tok,
        reconstructor=reconstructor,
        discriminator=discriminator,
        reward=SummaryReward(**REWARD),
    )
    return {
        "tok": tok,
        "articles": articles,
        "encoder": GeneratorEncoder(generator, tok),
        "generator": generator,
        "reconstructor": reconstructor,
        "discriminator": discriminator,
        "reward": reward,
    }


def _model_reward(parts: dict, **kw: object) -> ModelReward:
    """summary_ae's reward from the fixture's models, with these arguments changed."""
    settings = {
        "tokenizer": parts["tok"],
        "reconstructor": parts["reconstructor"],
        "discriminator": parts["discriminator"],
        "reward": SummaryReward(**REWARD),
    }
    return ModelReward(**{**settings, **kw})  # type: ignore[arg-type]


def _env(parts: dict, **kw: object) -> SummaryEnv:
    settings = {
        "articles": parts["articles"],
        "encoder": parts["encoder"],
        "reward": parts["reward"],
        "max_words": 4,
        "max_article_words": 13,
    }
    return SummaryEnv(**{**settings, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("with_reward", "actions"), [(True, "words"), (False, "words"), (True, "span")]
)
def test_both_environment_checkers_pass_without_warnings(
    parts: dict, with_reward: bool, actions: str
) -> None:
    env = _env(parts, reward=parts["reward"] if with_reward else None, actions=actions)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checker's warning fails the test
        gymnasium_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)


def test_observation_layout(parts: dict) -> None:
    env = _env(parts)
    enc = parts["encoder"]
    assert enc.state_dim == 16  # a bidirectional GRU of 8
    assert enc.word_dim == 8 + 16
    assert env.observation_space.shape == (enc.word_dim + 2 * enc.state_dim + N_SCALARS,)
    obs, info = env.reset(options={"article": 3})
    words = parts["articles"][3]
    features = enc(words)
    assert info == {"article": 3} and env.words == words
    np.testing.assert_allclose(obs[: enc.word_dim], features.words[0])
    kept_mean = obs[enc.word_dim : enc.word_dim + enc.state_dim]
    article_mean = obs[enc.word_dim + enc.state_dim : -N_SCALARS]
    np.testing.assert_array_equal(kept_mean, 0.0)
    np.testing.assert_allclose(article_mean, features.states.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(obs[-N_SCALARS:], [0, len(words) / 13, 0, 0, len(words) / 13])
    obs, *_ = env.step(1)  # keep the first word
    np.testing.assert_allclose(obs[: enc.word_dim], features.words[1])
    kept_mean = obs[enc.word_dim : enc.word_dim + enc.state_dim]
    np.testing.assert_allclose(kept_mean, features.states[0], atol=1e-6)
    assert np.abs(kept_mean).max() > 0
    repeat = float(words[1] == words[0])
    np.testing.assert_allclose(
        obs[-N_SCALARS:], [1 / 13, (len(words) - 1) / 13, 1 / 4, repeat, len(words) / 13]
    )
    assert env.observation_space.contains(obs)


def test_episode_ends_at_the_word_limit_with_the_reward_of_the_kept_words(parts: dict) -> None:
    env = _env(parts)
    env.reset(options={"article": 0})
    words = parts["articles"][0]
    actions = [1, 0, 1, 0, 1, 1]  # the 4th kept word (position 5) ends the episode
    for step, action in enumerate(actions):
        obs, reward, terminated, truncated, info = env.step(action)
        assert not truncated
        if step < len(actions) - 1:
            assert (reward, terminated) == (0.0, False) and "reward_terms" not in info
    assert terminated and env.kept == [0, 2, 4, 5]
    assert env.summary_words == [words[0], words[2], words[4], words[5]]
    assert words[4] == "zebra"  # an out-of-vocabulary word is kept (copied) like any other
    expected = parts["reward"].score([words], [env.summary_words])
    assert reward == pytest.approx(float(expected["total"][0]))
    terms = info["reward_terms"]
    assert terms["total"] == reward and info["summary_words"] == 4
    assert terms["total"] == pytest.approx(
        terms["reconstruction"] + terms["discriminator"] + terms["length"]
    )
    assert terms["length"] == pytest.approx(-0.2 * (5 - 4))  # 4 words and </s>, target 4
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_episode_ends_after_the_last_word_and_an_empty_summary_is_scored(parts: dict) -> None:
    env = _env(parts)
    env.reset(options={"article": 1})
    n = len(parts["articles"][1])
    for _ in range(n - 1):
        assert env.step(0)[2] is False
    _, reward, terminated, _, info = env.step(0)
    assert terminated and env.kept == [] and info["summary_words"] == 0
    empty = parts["reward"].score([parts["articles"][1]], [[]])
    assert reward == pytest.approx(float(empty["total"][0]))


def test_span_actions_keep_one_contiguous_run_of_words(parts: dict) -> None:
    """actions="span": 0 skips words until a 1 starts the summary; then 1 keeps the next word
    and 0 ends the episode, with the reward of the span."""
    env = _env(parts, actions="span", max_words=6)
    env.reset(options={"article": 2})
    words = parts["articles"][2]
    for action in (0, 0, 1, 1):  # skip two, then keep words 2 and 3
        obs, reward, terminated, _, _ = env.step(action)
        assert (reward, terminated) == (0.0, False)
    _, reward, terminated, _, info = env.step(0)  # ends the summary at once
    assert terminated and env.kept == [2, 3] and info["summary_words"] == 2
    expected = parts["reward"].score([words], [[words[2], words[3]]])
    assert reward == pytest.approx(float(expected["total"][0]))
    # the word limit and the article's end still end it; skipping everything keeps nothing
    env.reset(options={"article": 2})
    while not env.step(1)[2]:
        pass
    assert env.kept == list(range(6))
    env.reset(options={"article": 1})
    while not env.step(0)[2]:
        pass
    assert env.kept == [] and env._t == len(parts["articles"][1])


def test_random_span_policies_write_contiguous_summaries(parts: dict) -> None:
    """Whatever the decisions, a span summary is consecutive article positions of at most
    max_words words (and a words summary need not be)."""
    rng = np.random.default_rng(0)
    spans = rollout_summaries(
        _env(parts, reward=None, actions="span"),
        lambda obs: rng.integers(0, 2, size=len(obs)),
        batch_size=8,
    )
    assert any(len(kept) > 1 for kept in spans)
    for kept in spans:
        assert not kept or kept == list(range(kept[0], kept[0] + len(kept)))
        assert len(kept) <= 4
    rng = np.random.default_rng(0)
    subsets = rollout_summaries(
        _env(parts, reward=None), lambda obs: rng.integers(0, 2, size=len(obs)), batch_size=8
    )
    assert any(kept != list(range(kept[0], kept[0] + len(kept))) for kept in subsets if kept)


def test_unknown_actions_setting_is_refused(parts: dict) -> None:
    with pytest.raises(ValueError, match="actions must be one of"):
        _env(parts, actions="phrases")


def test_model_reward_matches_summary_ae_s_reward_of_a_sample(parts: dict) -> None:
    """The reward of kept words is SummaryReward's total of the extended ids + </s>, the
    reconstructor's mean log-likelihood and the discriminator's rewards computed directly."""
    from seqae.text.seq2seq import Summaries

    tok, words = parts["tok"], parts["articles"][0]
    kept = [1, 4, 6]
    src = tok.extend_batch([words])
    ids = torch.tensor([[int(src.extended_ids[0, i]) for i in kept] + [tok.eos_id]])
    summary = Summaries(ids, torch.tensor([4]), src.max_oovs)
    assert int(ids[0, 1]) >= tok.vocab_size  # "zebra" keeps its extended id
    article = tok.extend_targets([words], src.oov_words).extended_ids
    rec = parts["reconstructor"].eval().log_likelihood(summary, article, reduction="mean")
    disc = parts["discriminator"].token_rewards(ids, summary.lengths)
    want = SummaryReward(**REWARD)(rec, disc, summary.lengths).total
    assert parts["reward"](words, kept)["total"] == pytest.approx(float(want[0]), abs=1e-6)


@pytest.mark.parametrize("term", ["mean", "whole"])
def test_discriminator_term_mean_or_whole_replaces_the_discounted_prefix_sum(
    parts: dict, term: str
) -> None:
    """ "mean": the mean of the per-prefix rewards (the last prefix is the summary with its
    </s>); "whole": the finished summary's reward alone. Reconstruction and length terms are
    the same as with summary_ae's discounted sum."""
    tok, words = parts["tok"], parts["articles"][2]
    kept = [0, 2, 3]
    ids = torch.tensor([[int(tok.extend_batch([words]).extended_ids[0, i]) for i in kept]])
    ids = torch.cat([ids, torch.tensor([[tok.eos_id]])], dim=1)
    d = parts["discriminator"].token_rewards(ids, torch.tensor([4]))[0]
    want = float(d.mean()) if term == "mean" else float(d[3])
    prefixes = parts["reward"](words, kept)
    reward = _model_reward(parts, discriminator_term=term)
    other = reward(words, kept)
    assert other["discriminator"] == pytest.approx(want, abs=1e-6)
    assert prefixes["discriminator"] == pytest.approx(
        float(sum(0.9**k * d[k] for k in range(4))), abs=1e-6
    )
    for name in ("reconstruction", "length"):
        assert other[name] == pytest.approx(prefixes[name], abs=1e-6)
    assert other["total"] == pytest.approx(
        other["reconstruction"] + other["length"] + want, abs=1e-6
    )
    # an empty summary is its </s> alone: mean and whole are that one reward
    empty = reward(words, [])
    assert empty["discriminator"] == pytest.approx(parts["reward"](words, [])["discriminator"])
    with pytest.raises(ValueError, match="discriminator_term must be one of"):
        _model_reward(parts, discriminator_term="sum")


def test_load_reward_state_gives_the_reward_new_weights(parts: dict) -> None:
    """What a run whose reward models keep learning sends to every environment."""
    disc = PrefixDiscriminator.from_config(parts["discriminator"].config)
    rec = Reconstructor.from_config(parts["reconstructor"].config)
    env = _env(parts, reward=_model_reward(parts, reconstructor=rec, discriminator=disc))
    words, kept = parts["articles"][1], [0, 1]
    before = env.reward_fn(words, kept)
    assert before != parts["reward"](words, kept)  # other (fresh) weights
    env.load_reward_state(
        {
            "discriminator": parts["discriminator"].state_dict(),
            "reconstructor": parts["reconstructor"].state_dict(),
        }
    )
    after = env.reward_fn(words, kept)
    for name, value in parts["reward"](words, kept).items():
        assert after[name] == pytest.approx(value, abs=1e-6), name
    with pytest.raises(ValueError, match="no reward model 'generator'"):
        env.load_reward_state({"generator": {}})
    with pytest.raises(TypeError, match="has no models"):
        _env(parts, reward=KeywordReward(good=GOOD)).load_reward_state({})


def test_reset_seeds_and_bad_calls(parts: dict) -> None:
    env = _env(parts)

    def articles_after_seeding() -> list[int]:
        first = env.reset(seed=7)[1]["article"]
        return [first] + [env.reset()[1]["article"] for _ in range(5)]

    first, again = articles_after_seeding(), articles_after_seeding()
    assert first == again and len(set(first)) > 1
    with pytest.raises(ValueError, match="out of range"):
        env.reset(options={"article": 64})
    env.reset()
    with pytest.raises(ValueError, match="0 \\(drop\\) or 1 \\(keep\\)"):
        env.step(2)
    with pytest.raises(ValueError, match="max_article_words"):
        _env(parts, max_article_words=5)
    with pytest.raises(ValueError, match="max_words"):
        _env(parts, max_words=0)


def test_vectorised_stepping_matches_single_environments(parts: dict) -> None:
    venv = DummyVecEnv([lambda: _env(parts), lambda: _env(parts)])
    venv.seed(3)
    obs = venv.reset()
    singles = [_env(parts), _env(parts)]
    single_obs = [env.reset(seed=3 + i)[0] for i, env in enumerate(singles)]
    np.testing.assert_array_equal(obs, np.stack(single_obs))
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(30):
        actions = rng.integers(0, 2, size=2)
        obs, rewards, dones, infos = venv.step(actions)
        for i, env in enumerate(singles):
            o, r, terminated, _, _ = env.step(int(actions[i]))
            assert rewards[i] == pytest.approx(r) and dones[i] == terminated
            if terminated:
                ended += 1
                np.testing.assert_array_equal(infos[i]["terminal_observation"], o)
                o, _ = env.reset()
            np.testing.assert_array_equal(obs[i], o)
    assert ended >= 2
    venv.close()


def test_spec_pickles_and_builds_the_same_environment(parts: dict, tmp_path: Path) -> None:
    """What SubprocVecEnv's workers get: the spec pickles, and builds from the saved models an
    environment that behaves as the one built in memory."""
    folders = {name: tmp_path / name for name in ("tok", "gen", "rec", "disc")}
    parts["tok"].save(folders["tok"])
    parts["generator"].save_pretrained(folders["gen"])
    parts["reconstructor"].save_pretrained(folders["rec"])
    parts["discriminator"].save_pretrained(folders["disc"])
    spec = SummaryEnvSpec(
        articles=tuple(tuple(a) for a in parts["articles"]),
        tokenizer_dir=str(folders["tok"]),
        generator_dir=str(folders["gen"]),
        reconstructor_dir=str(folders["rec"]),
        discriminator_dir=str(folders["disc"]),
        reward=REWARD,
        max_words=4,
        max_article_words=13,
        actions="span",
        monitor=True,
    )
    built = pickle.loads(pickle.dumps(spec))()
    assert isinstance(built, Monitor) and built.unwrapped.actions == "span"
    ours = _env(parts, actions="span")
    for env in (built, ours):
        env.reset(seed=11)
    for action in [1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]:
        a = built.step(action)
        b = ours.step(action)
        np.testing.assert_allclose(a[0], b[0], atol=1e-6)
        assert a[1] == pytest.approx(b[1], abs=1e-6) and a[2] == b[2]
        if a[2]:
            break


def test_rollout_summaries_batches_like_one_at_a_time(parts: dict) -> None:
    env = _env(parts, reward=None, articles=parts["articles"][:7])

    def keep_w0_to_w4(obs: np.ndarray) -> np.ndarray:  # the word is in the observation
        table = {w: parts["encoder"]([w]).words[0, :8] for w in WORDS}
        current = obs[:, :8]
        return np.array(
            [any(np.allclose(row, table[w], atol=1e-6) for w in GOOD) for row in current]
        ).astype(int)

    batched = rollout_summaries(env, keep_w0_to_w4, batch_size=3)
    single = rollout_summaries(env, keep_w0_to_w4, batch_size=1)
    assert batched == single
    for words, kept in zip(parts["articles"][:7], batched, strict=True):
        good = [i for i, w in enumerate(words) if w in GOOD][:4]
        assert kept == good


def test_ppo_learns_a_toy_reward(parts: dict) -> None:
    """Keep the good words, drop the others: after a few seconds of PPO the mean episode
    reward is far above the untrained policy's (about 0) and near the best (about 0.55)."""
    reward = KeywordReward(good=GOOD, word_cost=0.1)
    articles = _articles(64, seed=1)

    def make() -> Monitor:
        return Monitor(_env(parts, articles=articles, reward=reward, max_words=8))

    model = PPO(
        "MlpPolicy",
        DummyVecEnv([make, make]),
        n_steps=128,
        batch_size=64,
        n_epochs=4,
        learning_rate=3e-3,
        gamma=1.0,
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": [32, 32]},
    )
    # a logger of its own: sb3's default makes a folder in the temporary directory per learn()
    model.set_logger(Logger(folder=None, output_formats=[]))
    evaluation = DummyVecEnv([make])

    def mean_reward() -> float:
        evaluation.seed(100)
        return float(evaluate_policy(model, evaluation, n_eval_episodes=50)[0])

    before = mean_reward()
    model.learn(4096)
    after = mean_reward()
    assert after > before + 0.3, (before, after)
    assert after > 0.4, (before, after)


def test_keyword_reward() -> None:
    reward = KeywordReward(good=["a", "b"], word_cost=0.1)
    terms = reward(["a", "x", "b", "a"], [0, 1])
    assert terms["keywords"] == pytest.approx(1 / 3)
    assert terms["length"] == pytest.approx(-0.2)
    assert terms["total"] == pytest.approx(1 / 3 - 0.2)
    assert reward(["x"], [])["total"] == 0.0
