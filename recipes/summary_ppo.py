"""Unsupervised summarization with PPO: an agent writes summaries in :class:`~seqae.text.env.
SummaryEnv`, rewarded by a finished ``summary_ae`` run's reconstructor and discriminator, and is
evaluated exactly as ``summary_ae`` evaluates its REINFORCE-trained generator, in one table.

    seqae run summary_ppo                              # after `seqae run summary_ae`
    seqae run summary_ppo --config summary_ppo_tiny    # seconds; after summary_ae_tiny

**What it reads** (``from_run``, a finished ``summary_ae`` run folder): its ``config.yaml``
(the corpus, the article and summary limits, the reward's weights, the evaluation's settings),
the tokenizer (``parts/tokenizer``), the trained generator (``models/generator``: its frozen
encoder gives the observations; its greedy summaries are the REINFORCE row), the reconstructor
and the discriminator (``models/``: the reward), the warm-started generator
(``parts/warm_generator``: the warm-start row) and the held-out summary language model
(``parts/language_model``: readability in the evaluation). A folder that is missing or not a
finished ``summary_ae`` run is refused in one line.

**The environment** (see :mod:`seqae.text.env` for why): one step per article word, action
keep (1) or drop (0); the summary is the kept words in the article's order; the episode ends
after the last word or when ``env.max_words`` words are kept (default: ``summary_ae``'s
``data.max_summary_words``, the limit its generator trains under). The reward, at the episode's
end, is ``summary_ae``'s (:class:`~seqae.text.rewards.SummaryReward` with that run's weights);
``discriminator.term`` says how the discriminator's per-prefix rewards enter it (summary_ae's
discounted sum, their mean, or the finished summary's alone). With ``discriminator.learns``
and ``reconstructor.learns`` the reward models keep learning against the policy
(:class:`LearningRewards`: real training summaries against the policy's, the articles rebuilt
from the policy's summaries), as summary_ae's adversarial stage keeps them learning against its
generator. The evaluation's mean rewards always use summary_ae's own reward models, so every
system is scored by the same judges.

**Training**: stable-baselines3's PPO with an MLP policy, ``env.n_envs`` environments
(``DummyVecEnv``, or ``SubprocVecEnv`` with ``env.vectorize: subproc``). Each PPO update
(``ppo.n_steps`` steps in each environment, then ``ppo.n_epochs`` epochs of minibatches) seeds
all its randomness from (seed, update) and starts new episodes (the cut-off ones at the end of
the previous rollout were bootstrapped by the value function), so a resumed run continues
exactly as an uninterrupted one. Checkpoints (every ``train.checkpoint_every`` updates, at
the end and when ``train.max_minutes`` is spent) hold the policy's weights and Adam's state,
read back with ``torch.load(weights_only=True)``; the PPO object is rebuilt from the config,
never unpickled (sb3's ``model.save`` writes pickles). TensorBoard logs go to ``tb/``.

**Evaluation** (``seqae.text.evaluation.evaluate_summaries``, with ``summary_ae``'s
``eval`` settings and seed): the policy's deterministic summaries of the test pairs, cut to
``eval.max_words`` words as ``summary_ae`` cuts its greedy summaries, against ``summary_ae``'s
generator ("REINFORCE (summary_ae)") and its warm start. Also each system's mean reward (the
objective both methods maximise) on the test articles.

Writes to ``output_dir``: config.yaml, checkpoints/, models/policy.safetensors (the final
policy's ``state_dict``: ``build_ppo`` then ``policy.load_state_dict``; the reward models that
learned, models/discriminator and models/reconstructor, in the saved-model format), model/ (a policy
summarizer folder, :mod:`seqae.text.policy`: ``seqae summarize --model output_dir/model`` and
the demo use it without stable-baselines3), tb/, eval_table.md and metrics.json. Single process (no torchrun), CPU.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from seqae.config import ConfigError, load_config
from seqae.core.losses import token_cross_entropy
from seqae.files import atomic_write_text, save_safetensors_atomic
from seqae.text.discriminator import PrefixDiscriminator
from seqae.text.env import ACTIONS, DISCRIMINATOR_TERMS, REWARD_MODELS, SummaryEnvSpec
from seqae.text.evaluation import article_words, evaluate_summaries, slug
from seqae.text.generator import PointerGenerator
from seqae.text.language_model import SummaryLanguageModel
from seqae.text.loaders import TextCorpus, load_text_corpus
from seqae.text.policy import SummaryPolicy
from seqae.text.reconstructor import Reconstructor
from seqae.text.seq2seq import Summaries
from seqae.text.summarize import (
    Summarizer,
    load_summarizer,
    save_policy_summarizer,
    summarize_texts,
)
from seqae.text.tokenizer import WordTokenizer
from seqae.training import (
    RESULT_NEUTRAL_KEYS,
    RunSession,
    init_distributed,
    require_single_process,
    seed_everything,
)

NULLABLE_KEYS = ("train.max_minutes", "env.max_words")
#: What a finished summary_ae run folder holds that this recipe reads.
SOURCE_PATHS = (
    "config.yaml",
    "parts/tokenizer",
    "parts/warm_generator",
    "parts/language_model",
    "models/generator",
    "models/reconstructor",
    "models/discriminator",
)
#: The keys of summary_ae's config this recipe reads.
SOURCE_KEYS = (
    "seed",
    "data.max_article_words",
    "data.max_summary_words",
    "reward.reconstruction_weight",
    "reward.target_length",
    "reward.length_weight",
    "adversary.weight",
    "adversary.gamma",
    "adversary.reward_form",
    "train.batch_size",
    "train.lr_discriminator",
    "train.lr_reconstructor",
    "train.grad_clip",
    "eval.max_words",
    "eval.n_boot",
    "eval.batch_size",
    "eval.examples",
)


# ---------------------------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------------------------
def validate(cfg: dict[str, Any]) -> None:
    """Refuse impossible settings before anything is built (one line, ConfigError)."""
    env, p, t = cfg["env"], cfg["ppo"], cfg["train"]
    if not isinstance(cfg["from_run"], str) or not cfg["from_run"]:
        raise ConfigError("from_run must name a finished summary_ae run folder")
    if env["n_envs"] < 1:
        raise ConfigError(f"env.n_envs must be at least 1, got {env['n_envs']}")
    if env["actions"] not in ACTIONS:
        raise ConfigError(
            f"env.actions must be one of {', '.join(ACTIONS)}, got {env['actions']!r}"
        )
    if cfg["eval"]["split"] not in (None, "test", "valid"):
        raise ConfigError(f"eval.split must be test, valid or null, got {cfg['eval']['split']!r}")
    if cfg["discriminator"]["term"] not in DISCRIMINATOR_TERMS:
        raise ConfigError(
            f"discriminator.term must be one of {', '.join(DISCRIMINATOR_TERMS)}, got "
            f"{cfg['discriminator']['term']!r}"
        )
    if env["vectorize"] not in ("dummy", "subproc"):
        raise ConfigError(f"env.vectorize must be dummy or subproc, got {env['vectorize']!r}")
    if env["max_words"] is not None and env["max_words"] < 1:
        raise ConfigError(f"env.max_words must be at least 1 (or null), got {env['max_words']}")
    for key in ("n_steps", "n_epochs"):
        if p[key] < 1:
            raise ConfigError(f"ppo.{key} must be at least 1, got {p[key]}")
    rollout = p["n_steps"] * env["n_envs"]
    if p["batch_size"] < 2 or rollout % p["batch_size"]:
        raise ConfigError(
            f"ppo.batch_size must be at least 2 and divide ppo.n_steps * env.n_envs = {rollout}, "
            f"got {p['batch_size']}"
        )
    for key in ("lr", "clip_range", "max_grad_norm"):
        if p[key] <= 0:
            raise ConfigError(f"ppo.{key} must be positive, got {p[key]}")
    for key in ("gamma", "gae_lambda"):
        if not 0.0 <= p[key] <= 1.0:
            raise ConfigError(f"ppo.{key} must be in [0, 1], got {p[key]}")
    for key in ("ent_coef", "vf_coef"):
        if p[key] < 0:
            raise ConfigError(f"ppo.{key} must be >= 0, got {p[key]}")
    arch = p["net_arch"]
    if not arch or not all(isinstance(n, int) and n >= 1 for n in arch):
        raise ConfigError(f"ppo.net_arch must be a list of layer sizes >= 1, got {arch!r}")
    for key in ("total_timesteps", "checkpoint_every"):
        if t[key] < 1:
            raise ConfigError(f"train.{key} must be at least 1, got {t[key]}")
    if t["threads"] < 0:
        raise ConfigError(f"train.threads must be >= 0 (0: torch's default), got {t['threads']}")


class Source(NamedTuple):
    """The finished summary_ae run this one learns from."""

    dir: Path
    #: Its resolved config.
    cfg: dict[str, Any]
    #: Its ``run.json`` (recipe, fingerprint, status, when it finished).
    record: dict[str, Any]

    def path(self, name: str) -> str:
        """A path in the run folder, as a string (what the environment spec stores)."""
        return str(self.dir / name)


def read_source(cfg: dict[str, Any]) -> Source:
    """The ``from_run`` folder, checked: a finished summary_ae run with every file needed."""
    folder = Path(cfg["from_run"])
    expected = "expected a finished summary_ae run folder (seqae run summary_ae)"
    if not folder.is_dir():
        raise ConfigError(f"from_run {folder} is not a folder; {expected}")
    if folder.resolve() == Path(cfg["output_dir"]).resolve():
        raise ConfigError(f"from_run and output_dir are both {folder}; choose another output_dir")
    try:
        record = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = None
    if not isinstance(record, dict) or record.get("recipe") != "summary_ae":
        raise ConfigError(
            f"from_run {folder} holds no summary_ae run (no run.json of one); {expected}"
        )
    if record.get("status") != "finished":
        raise ConfigError(
            f"from_run {folder}: its summary_ae run is {record.get('status', 'unfinished')}, not "
            f"finished; resume it first (resume=true), {expected}"
        )
    missing = [name for name in SOURCE_PATHS if not (folder / name).exists()]
    if missing:
        raise ConfigError(f"from_run {folder} lacks {', '.join(missing)}; {expected}")
    source_cfg = load_config(folder / "config.yaml")
    for dotted in SOURCE_KEYS:
        node: Any = source_cfg
        for key in dotted.split("."):
            if not isinstance(node, Mapping) or key not in node:
                raise ConfigError(f"from_run {folder}: its config.yaml lacks {dotted}; {expected}")
            node = node[key]
    return Source(folder, source_cfg, record)


def env_spec(cfg: dict[str, Any], source: Source, articles: list[list[str]]) -> SummaryEnvSpec:
    """The training environment over ``articles``, with summary_ae's reward."""
    r, a, d = source.cfg["reward"], source.cfg["adversary"], source.cfg["data"]
    max_words = cfg["env"]["max_words"] or d["max_summary_words"]
    return SummaryEnvSpec(
        articles=tuple(tuple(words) for words in articles),
        tokenizer_dir=source.path("parts/tokenizer"),
        generator_dir=source.path("models/generator"),
        reconstructor_dir=source.path("models/reconstructor"),
        discriminator_dir=source.path("models/discriminator"),
        reward={
            "reconstruction_weight": r["reconstruction_weight"],
            "discriminator_weight": a["weight"],
            "gamma": a["gamma"],
            "target_length": r["target_length"],
            "length_weight": r["length_weight"],
            "length_mode": r.get("length_mode", "over"),  # runs from before the key: "over"
        },
        reward_form=a["reward_form"],
        discriminator_term=cfg["discriminator"]["term"],
        max_words=max_words,
        max_article_words=d["max_article_words"],
        actions=cfg["env"]["actions"],
        monitor=True,
        threads=cfg["train"]["threads"] or None,
    )


def make_vec_env(cfg: dict[str, Any], spec: SummaryEnvSpec) -> VecEnv:
    """``env.n_envs`` environments, in this process or one process each."""
    fns = [spec] * cfg["env"]["n_envs"]
    return SubprocVecEnv(fns) if cfg["env"]["vectorize"] == "subproc" else DummyVecEnv(fns)


def build_ppo(cfg: dict[str, Any], env: VecEnv) -> PPO:
    """The PPO learner with freshly initialised weights (seeded by ``seed``)."""
    p = cfg["ppo"]
    return PPO(
        "MlpPolicy",
        env,
        learning_rate=p["lr"],
        n_steps=p["n_steps"],
        batch_size=p["batch_size"],
        n_epochs=p["n_epochs"],
        gamma=p["gamma"],
        gae_lambda=p["gae_lambda"],
        clip_range=p["clip_range"],
        ent_coef=p["ent_coef"],
        vf_coef=p["vf_coef"],
        max_grad_norm=p["max_grad_norm"],
        policy_kwargs={"net_arch": list(p["net_arch"])},
        seed=cfg["seed"],
        device="cpu",
        verbose=0,
    )


class RewardTerms(BaseCallback):
    """Logs the mean of each reward term over the episodes that end (``reward/<term>``) and
    keeps the rewards of the episodes of the latest rollout (:attr:`episode_rewards`)."""

    def __init__(self) -> None:
        super().__init__()
        self.episode_rewards: list[float] = []
        #: Those episodes' (article index, summary words), for reward models that learn.
        self.episodes: list[tuple[int, list[str]]] = []

    def _on_rollout_start(self) -> None:
        self.episode_rewards, self.episodes = [], []

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            terms = info.get("reward_terms", {})
            for name, value in terms.items():
                self.logger.record_mean(f"reward/{name}", value)
            if terms:
                self.episode_rewards.append(terms["total"])
                self.episodes.append((int(info["article"]), list(info["summary"])))
        return True


class LearningRewards:
    """summary_ae's reward models, kept learning against the policy (``discriminator.learns``,
    ``reconstructor.learns``) as summary_ae's adversarial stage keeps them learning against its
    generator. After each PPO update, one pass over the episodes the update ended (shuffled,
    in batches of summary_ae's ``train.batch_size``): the discriminator learns real training
    summaries (as many, drawn at random) against the policy's summaries, the reconstructor
    learns to rebuild each article from its summary; summary_ae's learning rates and gradient
    clipping. The environments then get the new weights, so the next rollout is rewarded by
    them. Weights and Adam's states are checkpointed with the run.

    Args:
        source: The summary_ae run (its models and training settings).
        tokenizer: Its tokenizer.
        articles: The environment's articles, as words (episodes name them by index).
        real: The real training summaries, as words.
        learns: The models that learn: ``discriminator`` and/or ``reconstructor``.
    """

    def __init__(
        self,
        source: Source,
        tokenizer: WordTokenizer,
        articles: Sequence[Sequence[str]],
        real: list[list[str]],
        learns: Sequence[str],
    ) -> None:
        t = source.cfg["train"]
        kinds = {"discriminator": PrefixDiscriminator, "reconstructor": Reconstructor}
        self.models = {
            name: kinds[name].from_pretrained(source.dir / "models" / name) for name in learns
        }
        self.optimizers = {
            name: torch.optim.Adam(model.parameters(), lr=t[f"lr_{name}"])
            for name, model in self.models.items()
        }
        self.batch_size, self.grad_clip = t["batch_size"], t["grad_clip"]
        self.tokenizer, self.articles, self.real = tokenizer, articles, real

    def track(self, run: RunSession) -> None:
        """Checkpoint the models and their optimizers with the run."""
        for name, model in self.models.items():
            run.track(**{name: model, f"{name}_adam": self.optimizers[name]})

    def _step(self, name: str, loss: torch.Tensor) -> None:
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.models[name].parameters(), self.grad_clip)
        optimizer.step()

    def _batch(
        self, episodes: list[tuple[int, list[str]]], rng: random.Random, *, measure: bool
    ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """The losses of one batch of episodes (article index, summary words), and with
        ``measure`` the discriminator's accuracy on it (every prefix, before its step)."""
        tok, losses, logged = self.tokenizer, {}, {}
        articles = [list(self.articles[index]) for index, _ in episodes]
        fakes = [summary for _, summary in episodes]
        src = tok.extend_batch(articles)
        ids = tok.extend_targets(fakes, src.oov_words)
        if "discriminator" in self.models:
            n = len(fakes)
            reals = rng.sample(self.real, n) if n <= len(self.real) else rng.choices(self.real, k=n)
            real = tok.extend_targets(reals, [[] for _ in reals])
            disc = self.models["discriminator"]
            pair = (real.ids, real.lengths, ids.extended_ids, ids.lengths)
            losses["discriminator"] = disc.loss(*pair)
            if measure:
                logged["discriminator/accuracy"] = disc.accuracy(*pair)
        if "reconstructor" in self.models:
            rec = self.models["reconstructor"]
            summary = Summaries(ids.extended_ids, ids.lengths, src.max_oovs)
            target = tok.extend_targets(articles, src.oov_words).extended_ids
            losses["reconstructor"] = token_cross_entropy(
                rec(summary, target), rec.score_targets(summary, target), pad_id=tok.pad_id
            )
        return losses, logged

    def learn(self, episodes: list[tuple[int, list[str]]], seed: int) -> dict[str, float]:
        """One pass over ``episodes`` (article index, summary words), shuffled and seeded by
        ``seed``; the last batch's losses (and the discriminator's accuracy) to log."""
        rng = random.Random(seed)
        torch.manual_seed(seed)  # dropout
        order = rng.sample(range(len(episodes)), len(episodes))
        for model in self.models.values():
            model.train()
        losses: dict[str, torch.Tensor] = {}
        logged: dict[str, float] = {}
        for start in range(0, len(order), self.batch_size):
            batch = [episodes[i] for i in order[start : start + self.batch_size]]
            last = start + self.batch_size >= len(order)
            losses, logged = self._batch(batch, rng, measure=last)
            for name, loss in losses.items():
                self._step(name, loss)
        for model in self.models.values():
            model.eval()
        return {**{f"{name}/loss": float(v.detach()) for name, v in losses.items()}, **logged}

    def share(self, env: VecEnv) -> None:
        """Give every environment's reward the current weights."""
        env.env_method(
            "load_reward_state", {name: m.state_dict() for name, m in self.models.items()}
        )

    def save(self, folder: Path) -> None:
        """Each learning model in ``folder/<name>`` (the saved-model format)."""
        for name, model in self.models.items():
            model.save_pretrained(folder / name)


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
def ppo_update(cfg: dict[str, Any], model: PPO, update: int, callback: BaseCallback) -> None:
    """One PPO update: a rollout of ``ppo.n_steps`` steps in each environment, then
    ``ppo.n_epochs`` epochs of minibatches. Its randomness comes from (seed, update), and it
    starts new episodes (``_last_obs = None`` makes ``learn`` reset the environments, seeded),
    so a resumed run continues exactly as an uninterrupted one."""
    model.set_random_seed(cfg["seed"] * 1_000_003 + update)
    model._last_obs = None  # noqa: SLF001 - sb3 has no public way to start new episodes
    model.learn(
        cfg["ppo"]["n_steps"] * cfg["env"]["n_envs"], callback=callback, reset_num_timesteps=False
    )


def train(
    cfg: dict[str, Any],
    run: RunSession,
    spec: SummaryEnvSpec,
    learning: LearningRewards | None = None,
) -> tuple[PPO, dict[str, Any]]:
    """PPO updates until ``train.total_timesteps`` (or the time budget), checkpointed; saves
    the final policy as ``models/policy.safetensors`` (and reward models that keep learning
    after each update, ``learning``, in ``models/``)."""
    t = cfg["train"]
    vec_env = make_vec_env(cfg, spec)
    try:
        model = build_ppo(cfg, vec_env)
        model.set_logger(configure(str(run.dir / "tb"), ["tensorboard"]))
        policy = model.policy
        if learning is not None:
            learning.track(run)
        resumed = run.resume(model=policy, optimizer=policy.optimizer)
        if learning is not None:
            learning.share(vec_env)
        update = resumed.step if resumed else 0
        # the rewards of the episodes that ended in the latest update
        rewards = [float(r) for r in resumed.extra["episode_rewards"]] if resumed else []
        if resumed:
            model.num_timesteps = int(resumed.extra["num_timesteps"])
        n_updates = math.ceil(t["total_timesteps"] / (cfg["ppo"]["n_steps"] * cfg["env"]["n_envs"]))
        callback = RewardTerms()
        while update < n_updates:
            ppo_update(cfg, model, update, callback)
            rewards = list(callback.episode_rewards)
            if learning is not None:
                logged = learning.learn(callback.episodes, cfg["seed"] * 1_000_003 + update)
                for name, value in logged.items():
                    model.logger.record(name, value)
                learning.share(vec_env)
            update += 1
            out_of_time = run.out_of_time()
            if run.checkpoint_due(update) or update == n_updates or out_of_time:
                run.save(
                    update,
                    model=policy,
                    optimizer=policy.optimizer,
                    extra={"num_timesteps": int(model.num_timesteps), "episode_rewards": rewards},
                )
            if out_of_time:
                print(
                    f"summary_ppo: train.max_minutes={t['max_minutes']} reached at update {update}"
                )
                break
        model.logger.dump(model.num_timesteps)  # the last update's train/ values
        save_safetensors_atomic(policy.state_dict(), run.dir / "models" / "policy.safetensors")
        if learning is not None:
            learning.save(run.dir / "models")
    finally:
        vec_env.close()
    return model, {
        "updates": update,
        "timesteps": int(model.num_timesteps),
        "train_episode_reward": float(np.mean(rewards)) if rewards else None,
        "train_seconds": run.train_seconds,
        "stopped_by_time_budget": run.out_of_time(),
    }


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------
def mean_rewards(
    spec: SummaryEnvSpec,
    tok: WordTokenizer,
    words: list[list[str]],
    systems: Mapping[str, Sequence[str]],
    *,
    batch: int,
) -> dict[str, dict[str, float]]:
    """Each system's mean reward terms on the test articles (summary_ae's objective), every
    summary read as finished (its words and ``</s>``), as the environment reads it."""
    reward = spec.model_reward(tok)
    out = {}
    for name, texts in systems.items():
        sums: dict[str, float] = {}
        for i in range(0, len(words), batch):
            summaries = [tok.tokenize(text).words for text in texts[i : i + batch]]
            for term, values in reward.score(words[i : i + batch], summaries).items():
                sums[term] = sums.get(term, 0.0) + float(values.sum())
        out[name] = {term: total / len(words) for term, total in sums.items()}
    return out


def evaluate(
    cfg: dict[str, Any],
    source: Source,
    run: RunSession,
    tok: WordTokenizer,
    corpus: TextCorpus,
    spec: SummaryEnvSpec,
) -> dict[str, Any]:
    """The test pairs' summaries of PPO, REINFORCE and the warm start, evaluated as summary_ae
    evaluates; writes eval_table.md. PPO's summaries are those of the exported policy folder
    (``output_dir/model``), written as ``seqae summarize`` writes them."""
    e, max_article = source.cfg["eval"], source.cfg["data"]["max_article_words"]
    # test (the report) or valid (while choosing settings); null: what summary_ae evaluated
    split = cfg["eval"]["split"] or e.get("split", "test")
    pairs = corpus.test if split == "test" else corpus.valid
    if not pairs:
        raise ConfigError(f"summary_ppo: the corpus has no {split} pairs to evaluate on")
    articles = [pair.article for pair in pairs]
    references = [pair.summary for pair in pairs]
    words = [article_words(tok, text, max_article) for text in articles]
    kw = {"max_words": e["max_words"], "max_article_words": max_article}

    def summaries(summarizer: Summarizer) -> list[str]:
        return summarize_texts(summarizer, articles, **kw, batch_size=e["batch_size"])[0]

    def greedy(folder: str) -> list[str]:
        """A summary_ae writer's summaries, decoded as summary_ae's evaluation decodes them
        (runs made before ``eval.no_repeat_ngram`` existed decoded without the constraint)."""
        gen = PointerGenerator.from_pretrained(source.dir / folder).eval()
        no_repeat = e.get("no_repeat_ngram", 0)
        return summaries(Summarizer(gen, tok, **kw, no_repeat_ngram=no_repeat))

    systems = {
        "PPO": summaries(load_summarizer(run.dir / "model")),
        "REINFORCE (summary_ae)": greedy("models/generator"),
        "warm start": greedy("parts/warm_generator"),
    }
    result = evaluate_summaries(
        articles=articles,
        references=references,
        systems=systems,
        primary="PPO",
        tokenizer=tok,
        language_model=SummaryLanguageModel.from_pretrained(
            source.dir / "parts" / "language_model"
        ),
        summary_vocabulary={w for text in corpus.summaries for w in tok.tokenize(text).words},
        reconstructor=Reconstructor.from_pretrained(source.dir / "models" / "reconstructor"),
        max_article_words=max_article,
        n_boot=e["n_boot"],
        seed=source.cfg["seed"],
        examples=e["examples"],
        batch_size=e["batch_size"],
        summary_limit=e["max_words"],
        title=(
            f"summary_ppo: PPO against summary_ae's REINFORCE ({source.dir}) on "
            f"{len(references)} {split} pairs"
        ),
        split=split,
    )
    rewards = mean_rewards(spec, tok, words, systems, batch=e["batch_size"])
    lines = [
        result.markdown.rstrip("\n"),
        "",
        f"## Mean reward on the {split} articles (summary_ae's objective, higher is better)",
        "",
        "| system | total | reconstruction | discriminator | length |",
        "|---|---|---|---|---|",
    ]
    metrics: dict[str, Any] = dict(result.metrics)
    for name, terms in rewards.items():
        lines.append(
            f"| {name} | "
            + " | ".join(
                f"{terms[k]:.3f}" for k in ("total", "reconstruction", "discriminator", "length")
            )
            + " |"
        )
        metrics |= {f"{slug(name)}_reward_{term}": value for term, value in terms.items()}
    atomic_write_text(run.dir / "eval_table.md", "\n".join(lines) + "\n")
    metrics["n_test"] = len(references)
    metrics["eval_split"] = split
    return metrics


def main(cfg: dict[str, Any]) -> dict[str, Any] | None:
    validate(cfg)
    require_single_process("summary_ppo")
    ctx = init_distributed(device_preference="cpu")
    seed_everything(cfg["seed"])
    source = read_source(cfg)
    threads = torch.get_num_threads()
    if cfg["train"]["threads"]:
        torch.set_num_threads(cfg["train"]["threads"])  # small models: one thread is fastest
    try:
        return learn_and_evaluate(cfg, ctx, source)
    finally:
        torch.set_num_threads(threads)


def learn_and_evaluate(cfg: dict[str, Any], ctx: Any, source: Source) -> dict[str, Any]:
    """The run: training, then evaluation, in ``output_dir``."""
    # resume=true train.total_timesteps=N trains on; the updates already done stay as they are
    neutral = (*RESULT_NEUTRAL_KEYS, "train.total_timesteps")
    with RunSession(cfg, recipe="summary_ppo", ctx=ctx, neutral=neutral) as run:
        # the summary_ae run must be the one this run started from (a re-run changes the models)
        stamp = {k: source.record.get(k) for k in ("fingerprint", "updated")}
        if run.part("source", lambda: stamp) != stamp:
            raise ConfigError(
                f"from_run {source.dir} was run again since this run started; its models "
                "changed. overwrite=true starts this run again"
            )
        corpus = load_text_corpus(source.cfg["data"])
        tok = WordTokenizer.load(source.dir / "parts" / "tokenizer")
        max_article = source.cfg["data"]["max_article_words"]
        articles = [article_words(tok, text, max_article) for text in corpus.articles]
        spec = env_spec(cfg, source, articles)
        learns = [name for name in REWARD_MODELS if cfg[name]["learns"]]
        learning = None
        if learns:
            max_summary = source.cfg["data"]["max_summary_words"]
            real = [article_words(tok, text, max_summary) for text in corpus.summaries]
            learning = LearningRewards(source, tok, articles, real, learns)
        model, summary = train(cfg, run, spec, learning)
        save_policy_summarizer(  # what `seqae summarize --model output_dir/model` reads
            run.dir / "model",
            SummaryPolicy.from_sb3(
                model.policy,
                actions=spec.actions,
                max_words=spec.max_words,
                max_article_words=max_article,
            ),
            PointerGenerator.from_pretrained(source.dir / "models" / "generator"),
            tok,
            max_article_words=max_article,
            max_words=source.cfg["eval"]["max_words"],
        )
        metrics = run.part(
            f"evaluate_update{summary['updates']}",
            lambda: evaluate(cfg, source, run, tok, corpus, spec),
        )
        metrics = {**metrics, **summary, "from_run": str(source.dir)}
        return run.finish(
            metrics,
            summary=(
                f"PPO after {summary['updates']} updates ({summary['timesteps']} steps): "
                f"{metrics['eval_split']} mean reward {metrics['ppo_reward_total']:.3f} (REINFORCE "
                f"{metrics['reinforce_summary_ae_reward_total']:.3f}, warm start "
                f"{metrics['warm_start_reward_total']:.3f})"
            ),
        )
