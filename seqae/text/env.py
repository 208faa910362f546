"""A Gymnasium environment in which an agent writes an article's summary, for PPO
(stable-baselines3): :class:`SummaryEnv`.

**The action space: keep or drop each article word** (``Discrete(2)``). The agent reads the
article word by word and decides for each whether the summary keeps it; the summary is the kept
words in the article's order. Why this and not a choice among all tokens:

- PPO's policy is a categorical distribution over the action space. Over a vocabulary of
  thousands of tokens (plus each article's copyable words) almost every action is useless in a
  given state, and without action masks (sb3-contrib's ``MaskablePPO``, which seqae does not
  require) exploration is hopeless. Two actions per step give every step a useful choice and a
  low-variance gradient.
- Every summary it can write is made of the article's own words, so names and rare words that
  the vocabulary lacks (the pointer-generator's copies) stay reachable, and keeping the
  article's order gives summaries that read like the ones ``summary_ae``'s generator learns to
  write (its warm start teaches it to pick article words in order).
- Episodes are short and bounded: one step per article word, ending after the last word or as
  soon as ``max_words`` words are kept.

**Two ways of keeping** (``actions``), the same ``Discrete(2)``:

- ``"words"``: any subset of the article's words. The policy can then satisfy the reward
  models with word salads they were never shown ("a module to handle debian pure to
  create"): a reward model is a learned judge, and an unconstrained writer finds its blind
  spots.
- ``"span"``: one contiguous run of the article's words. Before the summary starts, 1 starts
  it at the current word and 0 skips the word; once started, 1 keeps the current word and 0
  ends the summary (and the episode). A span is a piece of the article as written, so the
  summary stays readable whatever the reward models miss; what the policy learns is where the
  summary starts and how long it runs (e.g. that a synopsis starts after "Foo is a", which
  no fixed Lead-N can do).

**The observation** (a ``Box`` in ``[-1, 1]``, ``float32``) comes from a *frozen* encoder
(:class:`GeneratorEncoder`: the trained generator's word embedding and encoder states), so the policy is a small MLP over fixed features:

- the current word: its embedding (divided by the embedding table's largest magnitude, so it
  lies in ``[-1, 1]``) and its encoder state (through ``tanh``: a GRU's states already lie in
  ``[-1, 1]``, a transformer's do not);
- the mean encoder state of the words kept so far (zeros before the first), what the summary
  already says;
- the mean encoder state of the whole article, what there is to say;
- five numbers in ``[0, 1]``: the position (``t / max_article_words``), the words left
  (``(T - t) / max_article_words``), the words kept (``n / max_words``), whether the current
  word is already in the summary (to avoid repeats), and the article's length
  (``T / max_article_words``).

**The reward** comes once, at the episode's end (0 before): ``reward(article_words,
kept_positions)["total"]``. :class:`ModelReward` is ``summary_ae``'s reward of one summary,
computed exactly as its REINFORCE step does (:class:`~seqae.text.rewards.SummaryReward`'s
``total``: the reconstructor's mean per-token log-likelihood of the article from the summary,
the discriminator's discounted per-word rewards, the length term), so PPO and REINFORCE
optimise the same objective. The summary the reward models read is the kept words' extended
ids followed by ``</s>``, like a sampled summary. A terminal reward keeps that objective
exact; the value function (GAE with ``gamma = 1``) spreads the credit over the decisions.
:class:`KeywordReward` is a toy reward for tests and sanity checks.

    >>> encoder = GeneratorEncoder(generator, tokenizer)
    >>> reward = ModelReward(tokenizer=tok, reconstructor=rec, discriminator=disc,
    ...                      reward=SummaryReward(...), reward_form="centered")
    >>> env = SummaryEnv(articles=words, encoder=encoder, reward=reward, max_words=12)
    >>> obs, info = env.reset(seed=0)             # a random article (options={"article": i})
    >>> obs, r, terminated, truncated, info = env.step(1)      # keep the first word

:class:`SummaryEnvSpec` builds an environment from saved models (plain data and paths, so it
pickles into ``SubprocVecEnv``'s worker processes); :func:`rollout_summaries` writes the
summaries of many articles with a policy, batched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import gymnasium
import numpy as np
import torch
from gymnasium import spaces

from seqae.text.discriminator import PrefixDiscriminator
from seqae.text.generator import PointerGenerator
from seqae.text.reconstructor import Reconstructor
from seqae.text.rewards import SummaryReward
from seqae.text.seq2seq import Summaries
from seqae.text.tokenizer import WordTokenizer

__all__ = [
    "ACTIONS",
    "DISCRIMINATOR_TERMS",
    "REWARD_MODELS",
    "N_SCALARS",
    "ArticleEncoder",
    "EpisodeReward",
    "GeneratorEncoder",
    "KeywordReward",
    "ModelReward",
    "observation_size",
    "SummaryEnv",
    "SummaryEnvSpec",
    "WordFeatures",
    "rollout_summaries",
]

#: The count and position features at the end of each observation.
N_SCALARS = 5
DROP, KEEP = 0, 1
#: The ``actions`` settings of :class:`SummaryEnv`: any kept words, or one contiguous span.
ACTIONS = ("words", "span")
#: How :class:`ModelReward` sums the discriminator's per-word rewards into the summary's term.
DISCRIMINATOR_TERMS = ("prefixes", "mean", "whole")
#: :class:`ModelReward`'s trained models, by attribute name (:meth:`SummaryEnv.load_reward_state`).
REWARD_MODELS = ("discriminator", "reconstructor")


def observation_size(encoder: ArticleEncoder) -> int:
    """The size of :class:`SummaryEnv`'s observations over ``encoder``'s features."""
    return encoder.word_dim + 2 * encoder.state_dim + N_SCALARS


class WordFeatures(NamedTuple):
    """An article's frozen features, one row per word."""

    #: ``(T, word_dim)`` what the policy sees of the current word, in ``[-1, 1]``.
    words: np.ndarray
    #: ``(T, state_dim)`` the encoder states that are averaged (kept words, article), in
    #: ``[-1, 1]``.
    states: np.ndarray


class ArticleEncoder(Protocol):
    """Frozen per-word features of an article (see :class:`GeneratorEncoder`)."""

    word_dim: int
    state_dim: int

    def __call__(self, words: Sequence[str]) -> WordFeatures: ...


#: ``reward(article_words, kept_positions)`` -> named terms, ``"total"`` among them.
EpisodeReward = Callable[[Sequence[str], Sequence[int]], Mapping[str, float]]


class GeneratorEncoder:
    """An article's words through a trained generator's (frozen) embedding and encoder.

    The features are bounded so that the observation space is a ``Box`` in ``[-1, 1]``: the
    embedding is divided by the embedding table's largest magnitude, and the encoder states go
    through ``tanh`` (a recurrent encoder's states already lie in ``[-1, 1]``, where ``tanh`` is
    monotone and loses nothing; a transformer's are unbounded).

    Args:
        generator: The generator (any backbone); put in eval mode, its parameters are not
            trained.
        tokenizer: Its tokenizer (out-of-vocabulary words read as ``<unk>``, as the generator
            reads them).
    """

    def __init__(self, generator: PointerGenerator, tokenizer: WordTokenizer) -> None:
        if tokenizer.vocab_size != generator.vocab_size:
            raise ValueError(
                f"GeneratorEncoder: the tokenizer has {tokenizer.vocab_size} words but the "
                f"generator {generator.vocab_size}"
            )
        self.generator = generator.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        table = generator.core.embedding.weight
        self._scale = float(table.abs().max().clamp(min=1e-12))
        self.state_dim = int(self(["."]).states.shape[1])
        self.word_dim = table.shape[1] + self.state_dim

    @torch.no_grad()
    def __call__(self, words: Sequence[str]) -> WordFeatures:
        """Features of one article's words.

        Args:
            words: The article's words (at least one).
        """
        batch = self.tokenizer.extend_batch([list(words)])
        core = self.generator.core
        memory, _ = core.encode(batch.ids, batch.lengths)
        states = torch.tanh(memory.states[0])  # (T, M)
        embedded = core.embedding(batch.ids)[0] / self._scale  # (T, E), in [-1, 1]
        return WordFeatures(
            words=torch.cat([embedded, states], dim=-1).numpy().astype(np.float32),
            states=states.numpy().astype(np.float32),
        )


def _as_first_word(per_word: torch.Tensor, lengths: torch.Tensor, term: str) -> torch.Tensor:
    """Per-word rewards whose discounted sum from the first word is ``term`` (``"mean"`` or
    ``"whole"``) of ``per_word``: that value at position 0, zeros elsewhere."""
    steps = torch.arange(per_word.shape[1]).unsqueeze(0)
    if term == "mean":
        value = per_word.sum(dim=1) / lengths.clamp(min=1).to(per_word.dtype)
    else:
        value = per_word.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
    return torch.where(steps == 0, value.unsqueeze(1), torch.zeros_like(per_word))


class ModelReward:
    """``summary_ae``'s reward of one summary (see the module docstring).

    Args:
        tokenizer: The run's tokenizer.
        reconstructor: Scores the article given the summary (mean log-likelihood per token).
        discriminator: Per-word rewards of the summary; unused when
            ``reward.discriminator_weight`` is 0.
        reward: The combination (weights, discount, length target).
        reward_form: The discriminator's reward form (``"centered"`` or ``"log"``).
        discriminator_term: How the per-word rewards ``d_0..d_L`` (one per prefix, ``d_L``
            for the whole summary read to its ``</s>``) make the summary's discriminator term.
            ``"prefixes"`` (default): ``summary_ae``'s discounted sum ``sum_k gamma^k d_k``,
            the same objective as REINFORCE. Each prefix counts, so the term grows with the
            length: every further word adds ``gamma^k d_k``, a gain where the discriminator
            finds the prefix human and a cost where it does not. ``"mean"``: their mean,
            ``(1 / (L + 1)) sum_k d_k``, how human the summary reads on average, whatever
            its length. ``"whole"``: ``d_L`` only, the judgement of the finished summary.
    """

    def __init__(
        self,
        *,
        tokenizer: WordTokenizer,
        reconstructor: Reconstructor,
        discriminator: PrefixDiscriminator,
        reward: SummaryReward,
        reward_form: str = "centered",
        discriminator_term: str = "prefixes",
    ) -> None:
        if discriminator_term not in DISCRIMINATOR_TERMS:
            raise ValueError(
                f"ModelReward: discriminator_term must be one of "
                f"{', '.join(DISCRIMINATOR_TERMS)}, got {discriminator_term!r}"
            )
        self.tokenizer = tokenizer
        self.reconstructor = reconstructor.eval().requires_grad_(False)
        self.discriminator = discriminator.eval().requires_grad_(False)
        self.reward = reward
        self.reward_form = reward_form
        self.discriminator_term = discriminator_term

    def __call__(self, article: Sequence[str], kept: Sequence[int]) -> dict[str, float]:
        """The reward terms (``total``, ``reconstruction``, ``discriminator``, ``length``).

        Args:
            article: The article's words.
            kept: The positions of the summary's words in the article, in order.
        """
        terms = self.score([article], [[article[i] for i in kept]])
        return {name: float(values[0]) for name, values in terms.items()}

    @torch.no_grad()
    def score(
        self, articles: Sequence[Sequence[str]], summaries: Sequence[Sequence[str]]
    ) -> dict[str, torch.Tensor]:
        """The reward terms of a batch of summaries, each ``(B,)``.

        A summary's word that is not in the vocabulary has its article's extended id when the
        article has it (as a copy would), else ``<unk>``; ``</s>`` ends every summary.

        Args:
            articles: The articles' words (each at least one word).
            summaries: Each article's summary, as words (may be empty).
        """
        tok = self.tokenizer
        src = tok.extend_batch([list(words) for words in articles])
        ids = tok.extend_targets([list(words) for words in summaries], src.oov_words)
        summary = Summaries(ids.extended_ids, ids.lengths, src.max_oovs)
        target = tok.extend_targets([list(words) for words in articles], src.oov_words)
        reconstruction = self.reconstructor.log_likelihood(
            summary, target.extended_ids, reduction="mean"
        )
        if self.reward.discriminator_weight > 0:
            per_word = self.discriminator.token_rewards(
                summary.ids, summary.lengths, form=self.reward_form
            )
            if self.discriminator_term != "prefixes":
                per_word = _as_first_word(per_word, summary.lengths, self.discriminator_term)
        else:
            per_word = torch.zeros(summary.ids.shape)
        out = self.reward(reconstruction, per_word, summary.lengths)
        return {"total": out.total, **out.terms}


class KeywordReward:
    """A toy reward, for tests and sanity checks: the share of the article's good words that
    the summary keeps, minus ``word_cost`` per kept word. The best summary keeps each good word
    and nothing else.

    Args:
        good: The good words.
        word_cost: The length term's cost per kept word (>= 0).
    """

    def __init__(self, *, good: Sequence[str], word_cost: float = 0.1) -> None:
        if word_cost < 0:
            raise ValueError(f"KeywordReward: word_cost must be >= 0, got {word_cost}")
        self.good = frozenset(good)
        self.word_cost = word_cost

    def __call__(self, article: Sequence[str], kept: Sequence[int]) -> dict[str, float]:
        """The reward terms (``total``, ``keywords``, ``length``)."""
        present = sum(word in self.good for word in article)
        found = sum(article[i] in self.good for i in kept)
        share = found / max(present, 1)
        length = -self.word_cost * len(kept)
        return {"total": share + length, "keywords": share, "length": length}


class SummaryEnv(gymnasium.Env):
    """Write an article's summary by keeping or dropping each of its words, or by choosing
    where one contiguous span of them starts and ends (see the module docstring for the
    observation, the actions and the reward).

    Args:
        articles: The articles, as words (each with 1 to ``max_article_words`` words).
        encoder: Frozen per-word features (:class:`GeneratorEncoder`).
        reward: The episode's reward (:class:`ModelReward`, :class:`KeywordReward`); ``None``
            gives 0, for rollouts that only want the summaries.
        max_words: The episode ends as soon as this many words are kept.
        max_article_words: Scale of the position features (default: the longest article).
        actions: ``"words"`` (keep any words) or ``"span"`` (one contiguous run of words).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        *,
        articles: Sequence[Sequence[str]],
        encoder: ArticleEncoder,
        reward: EpisodeReward | None = None,
        max_words: int = 12,
        max_article_words: int | None = None,
        actions: str = "words",
    ) -> None:
        super().__init__()
        if not articles:
            raise ValueError("SummaryEnv: no articles")
        if actions not in ACTIONS:
            raise ValueError(f"SummaryEnv: actions must be one of {ACTIONS}, got {actions!r}")
        if max_words < 1:
            raise ValueError(f"SummaryEnv: max_words must be >= 1, got {max_words}")
        longest = max(len(words) for words in articles)
        limit = longest if max_article_words is None else max_article_words
        if min(len(words) for words in articles) < 1 or longest > limit:
            raise ValueError(
                f"SummaryEnv: every article needs 1 to {limit} words (max_article_words); cut "
                "them first"
            )
        self.articles = [list(words) for words in articles]
        self.encoder = encoder
        self.reward_fn = reward
        self.max_words = int(max_words)
        self.max_article_words = int(limit)
        self.actions = actions
        size = observation_size(encoder)
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(size,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self.index = -1
        self.kept: list[int] = []
        self._t = 0
        self._done = True
        self._features: WordFeatures | None = None
        self._kept_sum = np.zeros(encoder.state_dim, dtype=np.float32)
        self._article_mean = np.zeros(encoder.state_dim, dtype=np.float32)

    def clone(self) -> SummaryEnv:
        """A new environment over the same articles, encoder and reward (shared, not copied)."""
        return SummaryEnv(
            articles=self.articles,
            encoder=self.encoder,
            reward=self.reward_fn,
            max_words=self.max_words,
            max_article_words=self.max_article_words,
            actions=self.actions,
        )

    def load_reward_state(self, states: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        """Give the reward's models these weights, by name (``discriminator``,
        ``reconstructor``): reward models that keep learning against the policy, trained
        outside the environment (``VecEnv.env_method`` reaches every copy, in this process or
        in ``SubprocVecEnv``'s workers)."""
        if not isinstance(self.reward_fn, ModelReward):
            raise TypeError("SummaryEnv.load_reward_state: the reward has no models")
        for name, state in states.items():
            if name not in REWARD_MODELS:
                raise ValueError(f"SummaryEnv.load_reward_state: no reward model {name!r}")
            getattr(self.reward_fn, name).load_state_dict(state)

    # -- the episode -----------------------------------------------------------------------------

    @property
    def words(self) -> list[str]:
        """The current article's words."""
        return self.articles[self.index]

    @property
    def summary_words(self) -> list[str]:
        """The words kept so far, in the article's order."""
        return [self.words[i] for i in self.kept]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a summary of a random article, or of ``options["article"]`` (an index)."""
        super().reset(seed=seed)
        if options is not None and "article" in options:
            index = int(options["article"])
            if not 0 <= index < len(self.articles):
                raise ValueError(
                    f"SummaryEnv.reset: article {index} out of range (0 to "
                    f"{len(self.articles) - 1})"
                )
        else:
            index = int(self.np_random.integers(len(self.articles)))
        self.index = index
        self._features = self.encoder(self.words)
        self._article_mean = self._features.states.mean(axis=0)
        self._kept_sum = np.zeros_like(self._article_mean)
        self.kept, self._t, self._done = [], 0, False
        return self._observation(), {"article": index}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Keep (1) or drop (0) the current word (with ``actions="span"``, 0 after the first
        kept word ends the summary); the reward comes at the episode's end."""
        if self._done or self._features is None:
            raise RuntimeError("SummaryEnv.step: the episode has ended; call reset() first")
        choice = int(action)
        if choice not in (DROP, KEEP):
            raise ValueError(f"SummaryEnv.step: action must be 0 (drop) or 1 (keep), got {action}")
        span_ended = self.actions == "span" and choice == DROP and bool(self.kept)
        if choice == KEEP:
            self.kept.append(self._t)
            self._kept_sum += self._features.states[self._t]
        self._t += 1
        self._done = span_ended or self._t >= len(self.words) or len(self.kept) >= self.max_words
        info: dict[str, Any] = {"article": self.index}
        reward = 0.0
        if self._done:
            info["summary_words"] = len(self.kept)
            info["summary"] = self.summary_words
            if self.reward_fn is not None:
                terms = {k: float(v) for k, v in self.reward_fn(self.words, self.kept).items()}
                reward = terms["total"]
                info["reward_terms"] = terms
        return self._observation(), reward, self._done, False, info

    def _observation(self) -> np.ndarray:
        assert self._features is not None
        n_words, t = len(self.words), self._t
        current = (
            self._features.words[t]
            if t < n_words
            else np.zeros(self.encoder.word_dim, dtype=np.float32)
        )
        kept_mean = self._kept_sum / max(len(self.kept), 1)
        repeat = t < n_words and self.words[t] in self.summary_words
        scalars = np.array(
            [
                t / self.max_article_words,
                (n_words - t) / self.max_article_words,
                len(self.kept) / self.max_words,
                float(repeat),
                n_words / self.max_article_words,
            ],
            dtype=np.float32,
        )
        obs = np.concatenate([current, kept_mean, self._article_mean, scalars])
        return np.clip(obs, -1.0, 1.0).astype(np.float32)  # rounding only: already in range


@dataclass(frozen=True)
class SummaryEnvSpec:
    """How to build a :class:`SummaryEnv` from saved models: plain data and paths, so it
    pickles into ``SubprocVecEnv``'s workers. Calling it builds one environment.

    Args:
        articles: The articles, as words.
        tokenizer_dir: A :class:`WordTokenizer` folder.
        generator_dir: The generator whose encoder gives the observations.
        reconstructor_dir: The reward's reconstructor.
        discriminator_dir: The reward's discriminator.
        reward: :class:`~seqae.text.rewards.SummaryReward`'s keyword arguments.
        reward_form: The discriminator's reward form.
        discriminator_term: How the discriminator's per-word rewards make its term
            (:class:`ModelReward`).
        max_words: The summary's word limit.
        max_article_words: Scale of the position features.
        actions: ``"words"`` or ``"span"`` (:class:`SummaryEnv`).
        with_reward: False: no reward models are loaded and every reward is 0 (for rollouts
            that only want the summaries).
        monitor: Wrap the environment in stable-baselines3's ``Monitor`` (episode returns
            and lengths for the logs).
        threads: When set, building the environment sets torch's intra-op threads of the
            process to this (for ``SubprocVecEnv``'s workers, which start with torch's default).
    """

    articles: tuple[tuple[str, ...], ...]
    tokenizer_dir: str
    generator_dir: str
    reconstructor_dir: str
    discriminator_dir: str
    reward: Mapping[str, Any] = field(default_factory=dict)
    reward_form: str = "centered"
    discriminator_term: str = "prefixes"
    max_words: int = 12
    max_article_words: int | None = None
    actions: str = "words"
    with_reward: bool = True
    monitor: bool = False
    threads: int | None = None

    def model_reward(self, tokenizer: WordTokenizer) -> ModelReward:
        """summary_ae's reward from the trained reconstructor and discriminator."""
        return ModelReward(
            tokenizer=tokenizer,
            reconstructor=Reconstructor.from_pretrained(self.reconstructor_dir),
            discriminator=PrefixDiscriminator.from_pretrained(self.discriminator_dir),
            reward=SummaryReward(**self.reward),
            reward_form=self.reward_form,
            discriminator_term=self.discriminator_term,
        )

    def build(self) -> SummaryEnv:
        """The environment, unwrapped."""
        tok = WordTokenizer.load(self.tokenizer_dir)
        encoder = GeneratorEncoder(PointerGenerator.from_pretrained(self.generator_dir), tok)
        reward = self.model_reward(tok) if self.with_reward else None
        return SummaryEnv(
            articles=self.articles,
            encoder=encoder,
            reward=reward,
            max_words=self.max_words,
            max_article_words=self.max_article_words,
            actions=self.actions,
        )

    def __call__(self) -> gymnasium.Env:
        if self.threads:
            torch.set_num_threads(self.threads)
        env = self.build()
        if self.monitor:
            from stable_baselines3.common.monitor import Monitor

            return Monitor(env)
        return env


def rollout_summaries(
    env: SummaryEnv,
    predict: Callable[[np.ndarray], np.ndarray],
    *,
    batch_size: int = 64,
) -> list[list[int]]:
    """The kept positions of each of ``env``'s articles when ``predict`` takes the decisions,
    ``batch_size`` articles at a time (``env`` and its clones, stepped together).

    Args:
        env: The environment (its reward is computed at each episode's end: give one without
            a reward when only the summaries are wanted).
        predict: ``(B, obs_dim)`` observations -> ``(B,)`` actions (e.g. a policy's
            deterministic ``predict``).
        batch_size: Articles decided together (>= 1).
    """
    if batch_size < 1:
        raise ValueError(f"rollout_summaries: batch_size must be >= 1, got {batch_size}")
    n_articles = len(env.articles)
    envs = [env] + [env.clone() for _ in range(min(batch_size, n_articles) - 1)]
    kept: list[list[int]] = [[] for _ in range(n_articles)]
    for start in range(0, n_articles, len(envs)):
        active: dict[int, np.ndarray] = {}
        for slot, index in enumerate(range(start, min(start + len(envs), n_articles))):
            active[slot], _ = envs[slot].reset(options={"article": index})
        while active:
            slots = list(active)
            actions = np.asarray(predict(np.stack([active[s] for s in slots]))).reshape(-1)
            for slot, action in zip(slots, actions, strict=True):
                obs, _, terminated, truncated, _ = envs[slot].step(int(action))
                if terminated or truncated:
                    kept[envs[slot].index] = list(envs[slot].kept)
                    del active[slot]
                else:
                    active[slot] = obs
    return kept
