"""Unsupervised summarization: a sequence-to-sequence-to-sequence autoencoder whose code is a
readable summary (Wang & Lee 2018, "Learning to encode text as human-readable summaries using
generative adversarial networks", arXiv 1810.02851).

    seqae run summary_ae                               # full config (see its header)
    seqae run summary_ae --config summary_ae_tiny      # seconds; what the tests run

A pointer-generator writes a short summary of an article (article -> summary), a reconstructor
rebuilds the article from the summary (summary -> article), and a discriminator that has read
human-written summaries (never paired with the articles) judges whether each prefix of the
summary reads like one. The generator is trained with REINFORCE on the reconstruction reward
(the reconstructor's per-word log-likelihood of the article), the discriminator's per-word
rewards (discounted reward-to-go) and a length term, with the greedy summary's reward as the
self-critical baseline (Rennie et al. 2017). ``adversary.weight: 0`` is the ablation without a
discriminator (the summary then need not be readable).

Stages (each warm start is a ``run.part``, reused on ``resume=true``):

1. ``tokenizer``: a word tokenizer trained on the training articles and training summaries only.
2. ``warm_generator``: the generator learns on pseudo pairs made from unpaired articles
   (:func:`pseudo_pair`): its input is the article cut into phrases of ``pseudo.phrase_words``
   words whose order is shuffled, its target the words a random mask keeps (each with
   probability ``1 - pseudo.drop``) in the article's order, cut to ``data.max_summary_words``.
   So it learns to pick words anywhere in the article and write them in the article's order.
3. ``warm_reconstructor``: the reconstructor learns to rebuild articles from the warm
   generator's greedy summaries.
4. ``warm_discriminator``: real training summaries against the warm generator's samples.
5. Adversarial training, checkpointed (all three models in one ``nn.ModuleDict``, one Adam with
   a parameter group per model): every step samples summaries, rewards them, and updates the
   generator (policy gradient with an entropy bonus), the reconstructor (on the samples) and the
   discriminator (real summaries against the samples). Each step seeds its own randomness from
   (seed, step), so a resumed run continues exactly as an uninterrupted one.
6. ``evaluate_step<N>``: greedy summaries of the TEST pairs (at most ``eval.max_words`` words)
   scored with ROUGE-1/2/L (bootstrap intervals) for the model, the warm-started generator and
   Lead-N at the model's mean length; the reconstructor's NLL and token accuracy; no model
   selection (the valid pairs are not used). Writes ``eval_table.md``.

Writes to ``output_dir``: config.yaml, parts/ (tokenizer, warm-started models), checkpoints/,
models/{generator,reconstructor,discriminator} (final weights, ``seqae.load_pretrained``),
model/ (the generator with its tokenizer: what ``seqae summarize --model`` takes), tb/,
eval_table.md and metrics.json. Runs under torchrun (DistributedDataParallel, the corpus sharded
by rank); the warm starts and the evaluation are made by rank 0.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seqae.config import ConfigError, load_run_config
from seqae.core.losses import token_cross_entropy
from seqae.files import atomic_write_text
from seqae.text.corpus import PRESETS, build_text_corpus
from seqae.text.discriminator import PrefixDiscriminator
from seqae.text.evaluation import article_words, evaluate_summaries
from seqae.text.generator import PointerGenerator, Sampled
from seqae.text.language_model import SummaryLanguageModel, perplexity, train_language_model
from seqae.text.loaders import TextCorpus, load_text_corpus
from seqae.text.reconstructor import Reconstructor
from seqae.text.rewards import (
    LENGTH_MODES,
    SummaryReward,
    policy_gradient_loss,
    self_critical_advantage,
)
from seqae.text.seq2seq import Source, Summaries
from seqae.text.summarize import Summarizer, save_summarizer, summarize_texts
from seqae.text.tokenizer import ExtendedBatch, WordTokenizer
from seqae.training import (
    RESULT_NEUTRAL_KEYS,
    DistributedContext,
    MetricLogger,
    RunSession,
    barrier,
    check_finite,
    init_distributed,
    progress,
    seed_everything,
    wrap_model,
)

NULLABLE_KEYS = ("train.max_minutes", "reward.target_length", "data.corpus")
#: How the writer learns through its discrete summaries (``train.estimator``).
ESTIMATORS = ("reinforce", "gumbel")
MODELS = ("generator", "reconstructor", "discriminator")


# ---------------------------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------------------------
def validate(cfg: dict[str, Any]) -> None:
    """Refuse impossible settings before anything is built (one line, ConfigError)."""
    d, p, w, t, a, e = (
        cfg["data"],
        cfg["pseudo"],
        cfg["warm_start"],
        cfg["train"],
        cfg["adversary"],
        cfg["eval"],
    )
    if cfg["device"] not in ("cpu", "cuda", "auto"):
        raise ConfigError(f"device must be cpu, cuda or auto, got {cfg['device']!r}")
    if d["preset"] not in PRESETS:
        raise ConfigError(f"data.preset must be one of {sorted(PRESETS)}, got {d['preset']!r}")
    for key in ("max_article_words", "max_summary_words"):
        if d[key] < 1:
            raise ConfigError(f"data.{key} must be at least 1, got {d[key]}")
    if not 0.0 <= p["drop"] < 1.0:
        raise ConfigError(f"pseudo.drop must be in [0, 1), got {p['drop']}")
    if p["phrase_words"] < 1:
        raise ConfigError(f"pseudo.phrase_words must be at least 1, got {p['phrase_words']}")
    for key in ("generator_steps", "reconstructor_steps", "discriminator_steps", "batch_size"):
        if w[key] < 0 or (key == "batch_size" and w[key] < 1):
            raise ConfigError(
                f"warm_start.{key} must be non-negative (batch_size >= 1), got {w[key]}"
            )
    if t["threads"] < 0:
        raise ConfigError(f"train.threads must be >= 0 (0: torch's default), got {t['threads']}")
    for key in ("steps", "batch_size", "log_every"):
        if t[key] < 1:
            raise ConfigError(f"train.{key} must be at least 1, got {t[key]}")
    for key in ("lr", "lr_generator", "lr_reconstructor", "lr_discriminator"):
        section, name = (w, key) if key == "lr" else (t, key)
        if section[name] <= 0:
            where = "warm_start" if key == "lr" else "train"
            raise ConfigError(f"{where}.{key} must be positive, got {section[name]}")
    if t["temperature"] <= 0 or t["gumbel_tau"] <= 0:
        raise ConfigError(
            f"train.temperature and train.gumbel_tau must be positive, got "
            f"{t['temperature']} and {t['gumbel_tau']}"
        )
    if t["estimator"] not in ESTIMATORS:
        raise ConfigError(f"train.estimator must be one of {ESTIMATORS}, got {t['estimator']!r}")
    if a["weight"] < 0:
        raise ConfigError(f"adversary.weight must be >= 0 (0: no discriminator), got {a['weight']}")
    if not 0.0 <= a["gamma"] <= 1.0:
        raise ConfigError(f"adversary.gamma must be in [0, 1], got {a['gamma']}")
    if a["reward_form"] not in ("centered", "log"):
        raise ConfigError(
            f"adversary.reward_form must be centered or log, got {a['reward_form']!r}"
        )
    if cfg["reward"]["length_mode"] not in LENGTH_MODES:
        raise ConfigError(
            f"reward.length_mode must be one of {LENGTH_MODES}, got {cfg['reward']['length_mode']!r}"
        )
    if cfg["reward"]["length_weight"] < 0:
        raise ConfigError(
            f"reward.length_weight must be >= 0, got {cfg['reward']['length_weight']}"
        )
    lm = cfg["language_model"]
    for key in ("emb_dim", "hidden", "layers", "steps", "batch_size"):
        if lm[key] < 1:
            raise ConfigError(f"language_model.{key} must be at least 1, got {lm[key]}")
    if lm["lr"] <= 0 or not 0.0 <= lm["dropout"] < 1.0:
        raise ConfigError("language_model.lr must be positive and language_model.dropout in [0, 1)")
    if e["split"] not in ("test", "valid"):
        raise ConfigError(f"eval.split must be test or valid, got {e['split']!r}")
    if e["max_words"] < 1 or e["n_boot"] < 1 or e["examples"] < 0:
        raise ConfigError("eval.max_words and eval.n_boot must be >= 1 and eval.examples >= 0")
    for where, n in (("train", t["no_repeat_ngram"]), ("eval", e["no_repeat_ngram"])):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(
                f"{where}.no_repeat_ngram must be an integer >= 0 (0: no constraint), got {n!r}"
            )


def load_corpus(data_cfg: dict[str, Any]) -> TextCorpus:
    """The texts: a user's files through the loader's keys, or the embedded corpus under
    ``data.corpus``, built from this machine's apt descriptions when missing."""
    corpus = data_cfg.get("corpus")
    if corpus is not None and not (Path(corpus) / "corpus.json").is_file():
        folder = Path(corpus)
        if folder.is_dir() and any(folder.iterdir()):  # never build over a user's files
            raise ConfigError(
                f"data.corpus {corpus} holds files but no corpus.json; expected a corpus folder "
                "built by `seqae data text`, or a missing or empty folder to build one in"
            )
        print(f"summary_ae: building the {data_cfg['preset']} text corpus into {corpus}")
        build_text_corpus(corpus, preset=data_cfg["preset"], overwrite=False, what="data.corpus")
    return load_text_corpus(data_cfg)


def pseudo_pair(
    words: Sequence[str], rng: random.Random, *, drop: float, phrase_words: int, max_words: int
) -> tuple[list[str], list[str]]:
    """A pseudo (input, summary) pair from one unpaired article.

    Input: the article cut into consecutive phrases of ``phrase_words`` words, the phrases in a
    random order. Summary: the words kept by a random mask (each with probability
    ``1 - drop``; the first word if none is kept), in the article's order, cut to ``max_words``.
    """
    keep = [w for w in words if rng.random() >= drop] or list(words[:1])
    phrases = [list(words[i : i + phrase_words]) for i in range(0, len(words), phrase_words)]
    rng.shuffle(phrases)
    return [w for phrase in phrases for w in phrase], keep[:max_words]


def build_models(cfg: dict[str, Any], tok: WordTokenizer) -> nn.ModuleDict:
    """Generator, reconstructor and discriminator for this tokenizer."""
    ids = {"pad_id": tok.pad_id, "unk_id": tok.unk_id}
    seq_ids = {**ids, "bos_id": tok.bos_id, "eos_id": tok.eos_id}
    m = cfg["model"]
    return nn.ModuleDict(
        {
            "generator": PointerGenerator(vocab_size=tok.vocab_size, **seq_ids, **m["generator"]),
            "reconstructor": Reconstructor(
                vocab_size=tok.vocab_size, **seq_ids, **m["reconstructor"]
            ),
            "discriminator": PrefixDiscriminator(
                vocab_size=tok.vocab_size, **ids, **m["discriminator"]
            ),
        }
    )


def batch_of(items: Sequence[Any], rng: random.Random, size: int) -> list[Any]:
    """``size`` items drawn without replacement (with replacement when there are fewer)."""
    return rng.sample(list(items), size) if size <= len(items) else rng.choices(items, k=size)


def encode_articles(
    tok: WordTokenizer, words: list[list[str]], device: torch.device
) -> tuple[ExtendedBatch, torch.Tensor]:
    """Articles as the generator's input (extended ids) and as the reconstructor's target
    (their extended ids ending with ``</s>``), on ``device``."""
    src = tok.extend_batch(words)
    return src.to(device), tok.extend_targets(words, src.oov_words).extended_ids.to(device)


def real_summaries(tok: WordTokenizer, words: list[list[str]], device: torch.device) -> Summaries:
    """Human-written summaries, ending with ``</s>`` like the samples, on ``device``."""
    batch = tok.extend_targets(words, [[] for _ in words])
    return Summaries(batch.extended_ids.to(device), batch.lengths.to(device))


#: The settings a run's shared parts (tokenizer, warm starts, the judging language model)
#: depend on: a run that copies them from ``warm_start.from_run`` must share every one.
SHARED_KEYS = ("seed", "data", "tokenizer", "model", "pseudo", "warm_start", "language_model")
SHARED_PARTS = (
    "tokenizer",
    "warm_generator",
    "warm_reconstructor",
    "warm_discriminator",
    "language_model",
)


def warm_start_source(cfg: dict[str, Any]) -> Path | None:
    """The run named by ``warm_start.from_run`` (an ablation of the adversarial stage starts
    from a finished run's tokenizer, warm starts and language model), checked; or None."""
    folder = cfg["warm_start"]["from_run"]
    if folder is None:
        return None
    folder = Path(folder)
    other = load_run_config(folder, option="warm_start.from_run", recipe="summary_ae")

    def shared(config: dict[str, Any], key: str) -> Any:
        value = config.get(key)
        if key == "warm_start" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != "from_run"}
        return value

    differ = [key for key in SHARED_KEYS if shared(cfg, key) != shared(other, key)]
    if differ:
        raise ConfigError(
            f"warm_start.from_run: {folder} was made with other {', '.join(differ)} settings; "
            "a run can share the warm starts only of a run with the same ones"
        )
    missing = [name for name in SHARED_PARTS if not (folder / "parts" / f"{name}.json").is_file()]
    if missing:
        raise ConfigError(
            f"warm_start.from_run: {folder} has not finished {', '.join(missing)} "
            "(expected a summary_ae run past its warm starts)"
        )
    return folder


def copy_part(source: Path, run: RunSession, name: str) -> dict[str, Any]:
    """Copy part ``name`` (its folder) from the run in ``source``; its record is the result."""
    shutil.copytree(source / "parts" / name, run.part_dir(name), dirs_exist_ok=True)
    return json.loads((source / "parts" / f"{name}.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# warm start
# ---------------------------------------------------------------------------------------------
def train_tokenizer(cfg: dict[str, Any], corpus: TextCorpus, folder: Path) -> dict[str, Any]:
    """Train the tokenizer on the training articles and summaries only; save it in ``folder``."""
    tok = WordTokenizer.train(
        [*corpus.articles, *corpus.summaries],
        vocab_size=cfg["tokenizer"]["vocab_size"],
        min_frequency=cfg["tokenizer"]["min_frequency"],
    )
    tok.save(folder)
    return {"vocab_size": tok.vocab_size, "texts": len(corpus.articles) + len(corpus.summaries)}


def adam_step(model: nn.Module, *, lr: float, grad_clip: float) -> Callable[[torch.Tensor], None]:
    """A warm-start optimizer for ``model``: the returned ``step(loss)`` backpropagates
    ``loss``, clips the gradient norm at ``grad_clip`` and takes one Adam step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def step(loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()

    return step


def warm_generator(
    cfg: dict[str, Any],
    tok: WordTokenizer,
    articles: list[list[str]],
    folder: Path,
    device: torch.device,
) -> dict[str, Any]:
    """Teacher-forced training of the generator on pseudo pairs (:func:`pseudo_pair`)."""
    torch.manual_seed(cfg["seed"] + 1)
    rng = random.Random(cfg["seed"] + 1)
    w, p = cfg["warm_start"], cfg["pseudo"]
    gen = build_models(cfg, tok)["generator"].to(device).train()
    step = adam_step(gen, lr=w["lr"], grad_clip=cfg["train"]["grad_clip"])
    loss = torch.zeros(())
    for _ in progress(range(w["generator_steps"]), desc="summary_ae: warm generator"):
        pairs = [
            pseudo_pair(
                words,
                rng,
                drop=p["drop"],
                phrase_words=p["phrase_words"],
                max_words=cfg["data"]["max_summary_words"],
            )
            for words in batch_of(articles, rng, w["batch_size"])
        ]
        src, _ = encode_articles(tok, [source for source, _ in pairs], device)
        tgt = tok.extend_targets([target for _, target in pairs], src.oov_words).extended_ids
        tgt = tgt.to(device)
        loss = token_cross_entropy(gen(src, tgt), tgt, pad_id=tok.pad_id)
        step(loss)
    gen.save_pretrained(folder)
    return {"steps": w["generator_steps"], "final_loss": float(loss.detach())}


def warm_reconstructor(
    cfg: dict[str, Any],
    tok: WordTokenizer,
    articles: list[list[str]],
    generator_dir: Path,
    folder: Path,
    device: torch.device,
) -> dict[str, Any]:
    """Teacher-forced training of the reconstructor on the warm generator's greedy summaries."""
    torch.manual_seed(cfg["seed"] + 2)
    rng = random.Random(cfg["seed"] + 2)
    w = cfg["warm_start"]
    gen = PointerGenerator.from_pretrained(generator_dir).to(device).eval()
    rec = build_models(cfg, tok)["reconstructor"].to(device).train()
    step = adam_step(rec, lr=w["lr"], grad_clip=cfg["train"]["grad_clip"])
    loss = torch.zeros(())
    for _ in progress(range(w["reconstructor_steps"]), desc="summary_ae: warm reconstructor"):
        src, article = encode_articles(tok, batch_of(articles, rng, w["batch_size"]), device)
        summary = gen.greedy(src, max_words=cfg["data"]["max_summary_words"])
        loss = token_cross_entropy(
            rec(summary, article), rec.score_targets(summary, article), pad_id=tok.pad_id
        )
        step(loss)
    rec.save_pretrained(folder)
    return {"steps": w["reconstructor_steps"], "final_loss": float(loss.detach())}


def warm_discriminator(
    cfg: dict[str, Any],
    tok: WordTokenizer,
    articles: list[list[str]],
    summaries: list[list[str]],
    generator_dir: Path,
    folder: Path,
    device: torch.device,
) -> dict[str, Any]:
    """The discriminator on real training summaries against the warm generator's samples."""
    torch.manual_seed(cfg["seed"] + 3)
    rng = random.Random(cfg["seed"] + 3)
    w = cfg["warm_start"]
    gen = PointerGenerator.from_pretrained(generator_dir).to(device).eval()
    disc = build_models(cfg, tok)["discriminator"].to(device).train()
    step = adam_step(disc, lr=w["lr"], grad_clip=cfg["train"]["grad_clip"])
    loss, accuracy = torch.zeros(()), float("nan")
    for _ in progress(range(w["discriminator_steps"]), desc="summary_ae: warm discriminator"):
        real = real_summaries(tok, batch_of(summaries, rng, w["batch_size"]), device)
        src, _ = encode_articles(tok, batch_of(articles, rng, w["batch_size"]), device)
        with torch.no_grad():
            fake = gen.sample(src, max_words=cfg["data"]["max_summary_words"])
        loss = disc.loss(real.ids, real.lengths, fake.ids, fake.lengths)
        step(loss)
        accuracy = disc.accuracy(real.ids, real.lengths, fake.ids, fake.lengths)
    disc.save_pretrained(folder)
    return {
        "steps": w["discriminator_steps"],
        "final_loss": float(loss.detach()),
        "accuracy": accuracy,
    }


# ---------------------------------------------------------------------------------------------
# adversarial training
# ---------------------------------------------------------------------------------------------
def stack_summaries(first: Source, second: Source) -> Summaries:
    """Two batches of summaries as one (padded to the longer), to score them in one pass."""
    width = max(first.ids.shape[1], second.ids.shape[1])

    def padded(ids: torch.Tensor) -> torch.Tensor:
        return nn.functional.pad(ids, (0, width - ids.shape[1]), value=0)

    return Summaries(
        torch.cat([padded(first.ids), padded(second.ids)]),
        torch.cat([first.lengths, second.lengths]),
        max(first.max_oovs, second.max_oovs),
    )


class AdversarialObjective(nn.Module):
    """One adversarial step's losses for all three models, as one ``forward`` (what
    DistributedDataParallel wraps, so the three models' gradients are averaged over ranks in
    one backward pass).

    ``estimator="reinforce"`` (Wang & Lee): the generator samples summaries (with gradient)
    and writes greedy ones (the self-critical baseline); both are rewarded by the
    reconstructor's per-word log-likelihood of the article, the discriminator's per-word
    rewards (discounted) and a length term, and the policy gradient with an entropy bonus
    trains the generator. The reconstructor learns to rebuild the articles from the samples.

    ``estimator="gumbel"`` (the SEQ^3 ablation, Baziotis et al. 2019): the generator samples
    straight-through Gumbel-softmax one-hots; the reconstructor reads them, so its loss trains
    both models by backpropagation, and the discriminator's non-saturating loss ``-log D``
    on them (its weights frozen for that term) pushes the generator towards language. No
    baseline, no length term (the summary length is bounded by ``max_words`` alone).

    Either way the discriminator learns real training summaries against the samples (also
    when its rewards are off, ``adversary.weight: 0``, so its accuracy shows how far from
    language the code drifts).

    Args:
        models: ``generator``, ``reconstructor``, ``discriminator``.
        reward: Combines the reward terms (REINFORCE).
        pad_id: The tokenizer's padding id.
        max_words: The longest summary sampled.
        estimator: ``reinforce`` or ``gumbel``.
        temperature: Sampling temperature (REINFORCE).
        entropy_weight: Weight of the entropy bonus (REINFORCE).
        gumbel_tau: The relaxation's temperature (Gumbel-softmax).
        adversary_weight: Weight of the discriminator's rewards or loss (0: none).
        reward_form: ``centered`` or ``log`` (:meth:`PrefixDiscriminator.token_rewards`).
        no_repeat_ngram: ``n > 0``: samples and the greedy baseline never repeat an n-gram
            (:meth:`PointerGenerator.sample`); 0: unconstrained.
    """

    def __init__(
        self,
        models: nn.ModuleDict,
        reward: SummaryReward,
        *,
        pad_id: int,
        max_words: int,
        estimator: str = "reinforce",
        temperature: float = 1.0,
        entropy_weight: float = 0.0,
        gumbel_tau: float = 1.0,
        adversary_weight: float,
        reward_form: str = "centered",
        no_repeat_ngram: int = 0,
    ) -> None:
        super().__init__()
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        self.models = models
        self.reward = reward
        self.pad_id, self.max_words, self.estimator = pad_id, max_words, estimator
        self.temperature, self.entropy_weight = temperature, entropy_weight
        self.gumbel_tau = gumbel_tau
        self.adversary_weight, self.reward_form = adversary_weight, reward_form
        self.no_repeat_ngram = no_repeat_ngram

    def forward(
        self, src: ExtendedBatch, article: torch.Tensor, real: Summaries
    ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Each model's loss on one batch (to be summed and back-propagated) and what to log.

        Args:
            src: The articles (``WordTokenizer.extend_batch``).
            article: ``(B, T)`` their extended ids ending with ``</s>`` (the reconstruction
                target).
            real: Human-written training summaries (``ids``, ``lengths``).
        """
        disc = self.models["discriminator"]
        if self.estimator == "reinforce":
            sample, losses, logged = self._reinforce(src, article)
        else:
            sample, losses, logged = self._gumbel(src, article)
        # the discriminator: real training summaries against the samples
        losses["discriminator"] = disc.loss(real.ids, real.lengths, sample.ids, sample.lengths)
        logged |= {f"loss/{k}": float(v.detach()) for k, v in losses.items()}
        logged["generator/sample_tokens"] = float(sample.lengths.float().mean())
        logged["discriminator/accuracy"] = disc.accuracy(
            real.ids, real.lengths, sample.ids, sample.lengths
        )
        return losses, logged

    def _reinforce(
        self, src: ExtendedBatch, article: torch.Tensor
    ) -> tuple[Sampled, dict[str, torch.Tensor], dict[str, float]]:
        gen, rec, disc = (self.models[name] for name in MODELS)
        limits = {"max_words": self.max_words, "no_repeat_ngram": self.no_repeat_ngram}
        sample = gen.sample(src, temperature=self.temperature, **limits)
        gen.eval()
        greedy = gen.greedy(src, **limits)
        gen.train()

        # rewards: per-word reconstruction log-likelihood, discriminator per-word rewards
        batch = article.shape[0]
        rec.eval()
        with torch.no_grad():
            both = rec.log_likelihood(
                stack_summaries(sample, greedy), torch.cat([article, article]), reduction="mean"
            )
        rec.train()
        if self.adversary_weight > 0:
            d_sample = disc.token_rewards(sample.ids, sample.lengths, form=self.reward_form)
            d_greedy = disc.token_rewards(greedy.ids, greedy.lengths, form=self.reward_form)
        else:
            d_sample = sample.log_probs.new_zeros(sample.ids.shape)
            d_greedy = sample.log_probs.new_zeros(greedy.ids.shape)
        sampled = self.reward(both[:batch], d_sample, sample.lengths)
        baseline = self.reward(both[batch:], d_greedy, greedy.lengths)
        advantage = self_critical_advantage(sampled.returns, baseline.total, mask=sampled.mask)
        losses = {
            "generator_pg": policy_gradient_loss(
                sample.log_probs,
                advantage,
                sampled.mask,
                entropy=sample.entropy,
                entropy_weight=self.entropy_weight,
            ),
            # the reconstructor keeps learning to rebuild articles from the samples
            "reconstructor": token_cross_entropy(
                rec(sample, article), rec.score_targets(sample, article), pad_id=self.pad_id
            ),
        }
        logged = {f"reward/{k}": float(v.mean()) for k, v in sampled.terms.items()}
        logged["reward/total"] = float(sampled.total.mean())
        logged["reward/greedy_total"] = float(baseline.total.mean())
        logged["reward/advantage"] = float(advantage.sum(1).mean())
        logged["generator/entropy"] = float(
            (sample.entropy.detach() * sample.mask).sum() / sample.mask.sum().clamp(min=1)
        )
        logged["generator/greedy_tokens"] = float(greedy.lengths.float().mean())
        return sample, losses, logged

    def _gumbel(
        self, src: ExtendedBatch, article: torch.Tensor
    ) -> tuple[Sampled, dict[str, torch.Tensor], dict[str, float]]:
        gen, rec, disc = (self.models[name] for name in MODELS)
        sample = gen.gumbel_sample(
            src, max_words=self.max_words, tau=self.gumbel_tau, no_repeat_ngram=self.no_repeat_ngram
        )
        # the reconstructor reads the one-hots: its loss trains it and, through them, the writer
        losses = {
            "reconstructor": self.reward.reconstruction_weight
            * token_cross_entropy(
                rec(sample, article), rec.score_targets(sample, article), pad_id=self.pad_id
            )
        }
        if self.adversary_weight > 0:
            losses["generator_adversarial"] = self.adversary_weight * disc.generator_loss(
                sample.ids, sample.lengths, sample.soft
            )
        return sample, losses, {}


def train(
    cfg: dict[str, Any],
    run: RunSession,
    ctx: DistributedContext,
    tok: WordTokenizer,
    articles: list[list[str]],
    summaries: list[list[str]],
    warm_dirs: dict[str, Path],
) -> dict[str, Any]:
    """The adversarial loop, checkpointed; rank 0 saves the final models under ``models/``.

    Under torchrun every rank draws its batches from its own shard of the articles and of the
    summaries (``train.batch_size`` each), and DistributedDataParallel averages the three
    models' gradients, so every rank keeps the same weights.
    """
    t, a, r = cfg["train"], cfg["adversary"], cfg["reward"]
    models = nn.ModuleDict(
        {
            "generator": PointerGenerator.from_pretrained(warm_dirs["generator"]),
            "reconstructor": Reconstructor.from_pretrained(warm_dirs["reconstructor"]),
            "discriminator": PrefixDiscriminator.from_pretrained(warm_dirs["discriminator"]),
        }
    ).to(ctx.device)
    optimizer = torch.optim.Adam(
        [{"params": models[name].parameters(), "lr": t[f"lr_{name}"]} for name in MODELS]
    )
    reward = SummaryReward(
        reconstruction_weight=r["reconstruction_weight"],
        discriminator_weight=a["weight"],
        gamma=a["gamma"],
        target_length=r["target_length"],
        length_weight=r["length_weight"],
        length_mode=r["length_mode"],
    )
    objective = AdversarialObjective(
        models,
        reward,
        pad_id=tok.pad_id,
        max_words=cfg["data"]["max_summary_words"],
        estimator=t["estimator"],
        temperature=t["temperature"],
        entropy_weight=t["entropy_weight"],
        gumbel_tau=t["gumbel_tau"],
        adversary_weight=a["weight"],
        reward_form=a["reward_form"],
        no_repeat_ngram=t["no_repeat_ngram"],
    )
    resumed = run.resume(model=models, optimizer=optimizer)
    step = resumed.step if resumed else 0
    ddp = wrap_model(objective, ctx, find_unused_parameters=True)
    my_articles = articles[ctx.rank :: ctx.world_size]
    my_summaries = summaries[ctx.rank :: ctx.world_size]
    logger = MetricLogger(run.dir) if ctx.is_main else None
    bar = progress(range(step, t["steps"]), desc="summary_ae", enabled=ctx.is_main)
    models.train()
    for _ in bar:
        # every step's randomness comes from (seed, step, rank): a resumed run continues exactly
        seed = (cfg["seed"] * 1_000_003 + step) * 101 + ctx.rank
        torch.manual_seed(seed)
        rng = random.Random(seed)
        src, article = encode_articles(tok, batch_of(my_articles, rng, t["batch_size"]), ctx.device)
        real = real_summaries(tok, batch_of(my_summaries, rng, t["batch_size"]), ctx.device)
        losses, logged = ddp(src, article, real)
        check_finite(losses, step=step)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        for name in MODELS:
            nn.utils.clip_grad_norm_(models[name].parameters(), t["grad_clip"])
        optimizer.step()
        step += 1
        if logger is not None and step % t["log_every"] == 0:
            logger.scalars(logged, step=step, prefix="train/")
        out_of_time = run.out_of_time()
        if run.checkpoint_due(step) or step == t["steps"] or out_of_time:
            run.save(step, model=models, optimizer=optimizer)
        if out_of_time:
            if ctx.is_main:
                print(f"summary_ae: train.max_minutes={t['max_minutes']} reached at step {step}")
            break
    if logger is not None:
        logger.flush()
    if ctx.is_main:
        for name in MODELS:
            models[name].save_pretrained(run.dir / "models" / name)
        save_summarizer(  # the generator with its tokenizer: `seqae summarize --model run_dir/model`
            run.dir / "model",
            models["generator"],
            tok,
            max_article_words=cfg["data"]["max_article_words"],
            max_words=cfg["eval"]["max_words"],
            no_repeat_ngram=cfg["eval"]["no_repeat_ngram"],
        )
    return {
        "steps": step,
        "train_seconds": run.train_seconds,
        "stopped_by_time_budget": run.out_of_time(),
        "world_size": ctx.world_size,
    }


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------
def train_reference_lm(
    cfg: dict[str, Any],
    tok: WordTokenizer,
    corpus: TextCorpus,
    folder: Path,
    device: torch.device,
) -> dict[str, Any]:
    """The held-out language model that judges readability: trained on the real training
    summaries alone (never against the writer); its perplexity of the validation summaries."""
    lm_cfg = cfg["language_model"]
    words = [tok.tokenize(text).words for text in corpus.summaries]
    lm = train_language_model(
        tok, [w for w in words if w], seed=cfg["seed"] + 4, device=device, **lm_cfg
    )
    lm.save_pretrained(folder)
    valid = [pair.summary for pair in corpus.valid]
    return {
        "steps": lm_cfg["steps"],
        "valid_perplexity": perplexity(lm, tok, valid) if valid else None,
    }


def evaluate(
    cfg: dict[str, Any],
    run: RunSession,
    tok: WordTokenizer,
    corpus: TextCorpus,
    warm_generator_dir: Path,
    device: torch.device,
) -> dict[str, Any]:
    """The model, the warm start and the lead baselines on the pairs of ``eval.split`` (the
    test pairs for the report; the validation pairs while choosing settings), all scored by
    :func:`seqae.text.evaluation.evaluate_summaries`; writes ``eval_table.md``. The writers'
    greedy summaries repeat no ``eval.no_repeat_ngram``-gram (0: unconstrained)."""
    e = cfg["eval"]
    pairs = corpus.test if e["split"] == "test" else corpus.valid
    if not pairs:
        raise ConfigError(f"summary_ae: the corpus has no {e['split']} pairs to evaluate on")
    articles = [pair.article for pair in pairs]
    limits = {"max_words": e["max_words"], "max_article_words": cfg["data"]["max_article_words"]}

    def greedy(folder: Path) -> list[str]:
        gen = PointerGenerator.from_pretrained(folder).to(device).eval()
        summarizer = Summarizer(gen, tok, **limits)
        return summarize_texts(
            summarizer,
            articles,
            **limits,
            batch_size=e["batch_size"],
            no_repeat_ngram=e["no_repeat_ngram"],
        )[0]

    systems = {
        "model": greedy(run.dir / "models" / "generator"),
        "warm start": greedy(warm_generator_dir),
    }
    result = evaluate_summaries(
        articles=articles,
        references=[pair.summary for pair in pairs],
        systems=systems,
        primary="model",
        tokenizer=tok,
        language_model=SummaryLanguageModel.from_pretrained(run.part_dir("language_model")),
        summary_vocabulary={w for text in corpus.summaries for w in tok.tokenize(text).words},
        reconstructor=Reconstructor.from_pretrained(run.dir / "models" / "reconstructor"),
        max_article_words=cfg["data"]["max_article_words"],
        n_boot=e["n_boot"],
        seed=cfg["seed"],
        examples=e["examples"],
        batch_size=e["batch_size"],
        summary_limit=e["max_words"],
        title=f"summary_ae ({Path(cfg['output_dir']).name}): the {e['split']} pairs",
        split=e["split"],
    )
    atomic_write_text(run.dir / "eval_table.md", result.markdown)
    return result.metrics


def main(cfg: dict[str, Any]) -> dict[str, Any] | None:
    validate(cfg)
    threads = torch.get_num_threads()
    if cfg["train"]["threads"] > 0:
        torch.set_num_threads(cfg["train"]["threads"])
    try:
        return run_summary_ae(cfg)
    finally:
        torch.set_num_threads(threads)


def run_summary_ae(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The whole run (:func:`main` without the thread setting)."""
    ctx = init_distributed(device_preference=cfg["device"])
    seed_everything(cfg["seed"])
    # resume=true train.steps=N extends the adversarial stage; it leaves the warm starts alone
    neutral = (*RESULT_NEUTRAL_KEYS, "train.steps", "train.threads")
    with RunSession(cfg, recipe="summary_ae", ctx=ctx, neutral=neutral) as run:
        if ctx.is_main:
            corpus = load_corpus(cfg["data"])
        barrier()  # rank 0 builds the corpus when it is missing; the others read it after
        if not ctx.is_main:
            corpus = load_text_corpus(cfg["data"])
        split = cfg["eval"]["split"]
        if not (corpus.test if split == "test" else corpus.valid):  # before any training
            raise ConfigError(
                f"summary_ae: the corpus has no {split} pairs to evaluate on (eval.split={split}"
                f"; with your own files: data.{split}_pairs)"
            )
        source = warm_start_source(cfg)

        def made(name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
            """A part every rank needs: made once by rank 0, or copied from ``from_run``."""
            if source is not None:
                return run.part(name, lambda: copy_part(source, run, name), main_only=True)

            def announced() -> dict[str, Any]:
                print(f"summary_ae: {name}")
                return compute()

            return run.part(name, announced, main_only=True)

        tok_dir = run.part_dir("tokenizer")
        made("tokenizer", lambda: train_tokenizer(cfg, corpus, tok_dir))
        tok = WordTokenizer.load(tok_dir)
        d = cfg["data"]
        articles = [article_words(tok, text, d["max_article_words"]) for text in corpus.articles]
        summaries = [article_words(tok, text, d["max_summary_words"]) for text in corpus.summaries]
        dirs = {name: run.part_dir(f"warm_{name}") for name in MODELS}
        parts = {
            "warm_generator": made(
                "warm_generator",
                lambda: warm_generator(cfg, tok, articles, dirs["generator"], ctx.device),
            ),
            "warm_reconstructor": made(
                "warm_reconstructor",
                lambda: warm_reconstructor(
                    cfg, tok, articles, dirs["generator"], dirs["reconstructor"], ctx.device
                ),
            ),
            "warm_discriminator": made(
                "warm_discriminator",
                lambda: warm_discriminator(
                    cfg,
                    tok,
                    articles,
                    summaries,
                    dirs["generator"],
                    dirs["discriminator"],
                    ctx.device,
                ),
            ),
            "language_model": made(
                "language_model",
                lambda: train_reference_lm(
                    cfg, tok, corpus, run.part_dir("language_model"), ctx.device
                ),
            ),
        }
        summary = train(cfg, run, ctx, tok, articles, summaries, dirs)
        if not ctx.is_main:
            return None
        metrics = run.part(
            f"evaluate_{cfg['eval']['split']}_step{summary['steps']}",
            lambda: evaluate(cfg, run, tok, corpus, dirs["generator"], ctx.device),
        )
        metrics = {
            **metrics,
            **summary,
            "vocab_size": tok.vocab_size,
            "parts": parts,
            "adversary_weight": cfg["adversary"]["weight"],
        }
        return run.finish(metrics, summary=summary_line(metrics, split=cfg["eval"]["split"]))


def summary_line(m: dict[str, Any], *, split: str) -> str:
    """The run's result on the ``split`` pairs in one line."""
    return (
        f"{split} ROUGE-1/L F1 {m['model_rouge1']:.3f}/{m['model_rouge_l']:.3f} (warm start "
        f"{m['warm_start_rouge1']:.3f}/{m['warm_start_rouge_l']:.3f}, Lead-8 "
        f"{m['lead_8_rouge1']:.3f}/{m['lead_8_rouge_l']:.3f}) | {m['model_mean_words']:.1f} words "
        f"| perplexity {m['model_perplexity']:.0f} (references {m['reference_perplexity']:.0f}) "
        f"| reconstruction NLL {m['model_reconstruction_nll']:.2f} nats/token"
    )
