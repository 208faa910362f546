"""One-shot voice conversion with a speaker/content disentangled autoencoder.

    seqae run vc                         # the full config: builds the corpus, trains 48-63 min, evaluates 15-35 min on 2 CPU cores
    seqae run vc --config vc_gpu         # a larger model for one GPU
    seqae run vc --config vc_tiny        # seconds; what the tests run
    seqae run vc model.name=vq_vc        # VQ content codes instead of AdaIN-VC's Gaussian ones
    seqae run vc adversary.weight=0.1    # add the adversarial speaker classifier
    torchrun --nproc_per_node=2 -m seqae.cli run vc

Stages:

1. **Corpus.** ``data.corpus`` is a VCTK-layout folder. When it holds no corpus yet, the
   embedded multi-speaker corpus is synthesized there (``seqae data speech``, preset
   ``data.build_preset``). Training uses the ``train`` sentences of the ``train`` speakers only;
   the ``unseen`` voices and the ``test`` sentences are kept for evaluation. Log-mels
   (:mod:`seqae.audio.features`) are cached beside the corpus.
2. **Training.** The model (``model.name``: ``adain_vc`` [arXiv 1904.05742], ``vq_vc``
   [2005.07815] or ``autovc`` [1905.05879]) reconstructs a random crop of an utterance from its
   content code and a speaker embedding computed from a crop of ANOTHER utterance of the same
   speaker, so the speaker path cannot carry the content. Loss: L1 reconstruction of the
   normalised log-mel + the content bottleneck's term (AdaIN-VC: ``train.kl_weight`` x the KL per
   latent element, annealed in; VQ: the commitment term; AutoVC: the content-code loss
   ``train.autovc_code_weight`` x |E(recon) - z|) + optionally the adversarial speaker classifier of arXiv 1804.02812 on the
   content code (``adversary.weight`` > 0). Frequency-warp augmentation
   (:mod:`seqae.audio.augment`): ``augment.content_warp`` warps what the content encoder sees by a
   random factor, so the decoder must take the voice's timbre and pitch level from the speaker
   embedding; ``augment.speaker_warp`` warps a crop and its reference together into a
   pseudo-speaker. Step-based; batches and warp factors are a function of ``(seed, step)`` so a
   resumed run continues exactly.
3. **Evaluation** (:mod:`seqae.audio.evaluate`): one-shot conversions of held-out sentences to
   seen (``eval.seen_targets``) and unseen (``eval.unseen_targets``) voices, scored with
   resemblyzer speaker similarity, pocketsphinx WER and MCD-DTW, beside Griffin-Lim resynthesis
   of the target (ceiling) and the unconverted source (floor); and a speaker probe on content
   codes and speaker embeddings. ``eval.vocoder`` names a vocoder trained with
   ``seqae run vocoder`` to use instead of Griffin-Lim. ``eval.n_references`` may list several
   reference counts (the full config: ``[1, 2]``): each converts the same sources, and each
   count after the first is compared with it pair for pair.

Writes to ``output_dir``: config.yaml, run.json, checkpoints/, model/ (``seqae convert
--model``), tb/, figures/ (mels of source, reference and conversion; 2-D projections of speaker
embeddings and content codes), samples/ (converted wavs), eval_table.md, eval_pairs.json (every
scored output), parts/ and metrics.json.

Training and evaluation are the two parts of one run (:class:`seqae.training.RunSession`):
``resume=true`` (vc.yaml's default) continues an interrupted training from its last checkpoint,
and reuses the evaluation only when it finished. ``train.max_minutes`` counts over all of a
run's resumes: a run it stopped is evaluated as it is, and ``resume=true
train.max_minutes=120`` trains it on and evaluates it again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from seqae import registry  # noqa: E402
from seqae.audio import models  # noqa: E402
from seqae.audio.augment import check_warp_bounds, sample_warp_factors, warp_mels  # noqa: E402
from seqae.audio.corpus import PRESETS, open_or_build_corpus  # noqa: E402
from seqae.audio.dataset import SegmentBatcher, SpeechCorpus, Utterance, load_features  # noqa: E402
from seqae.audio.features import FeatureConfig  # noqa: E402
from seqae.audio.matching import MATCH_MODES  # noqa: E402
from seqae.audio.speaker_loss import GE2ELoss  # noqa: E402
from seqae.config import ConfigError  # noqa: E402
from seqae.core.schedules import WarmupCosineSchedule  # noqa: E402
from seqae.training import (  # noqa: E402
    RESULT_NEUTRAL_KEYS,
    MetricLogger,
    RunSession,
    atomic_write_json,
    atomic_write_text,
    autocast_context,
    check_finite,
    check_precision,
    init_distributed,
    maybe_compile,
    progress,
    resolve_precision,
    seed_everything,
    wrap_model,
)

RECIPE = "vc"
#: Keys a user may set to null although the config gives them a value (null: no budget, all
#: training sources, all source kinds, no warp).
NULLABLE_KEYS = (
    "train.max_minutes",
    "data.sources",
    "eval.source_kinds",
    "eval.pair_voices",
    "augment.content_warp",
    "augment.speaker_warp",
)
#: Keys that cannot change the result of a run: synthesis processes, and the thread count (which,
#: like the device, changes only the last bits of what a resumed run computes).
NEUTRAL_KEYS = (*RESULT_NEUTRAL_KEYS, "data.workers", "train.threads")


# ---------------------------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------------------------
def validate(cfg: dict[str, Any]) -> None:
    """Refuse impossible settings before the corpus is built or a model is made."""
    d, m, t, a = cfg["data"], cfg["model"], cfg["train"], cfg["adversary"]
    if not d["corpus"]:
        raise ConfigError("data.corpus must name a corpus directory (it is built when missing)")
    if d["build_preset"] not in PRESETS:
        raise ConfigError(
            f"data.build_preset must be one of {', '.join(PRESETS)}, got {d['build_preset']!r}"
        )
    if d["segment_frames"] < 16:
        raise ConfigError(f"data.segment_frames must be >= 16, got {d['segment_frames']}")
    try:
        features = FeatureConfig.from_dict(cfg["features"])
    except (KeyError, ValueError) as err:
        raise ConfigError(f"features: {err.args[0]}") from None
    if m["name"] not in registry.names("vc_model"):
        raise ConfigError(
            f"model.name must be one of {', '.join(registry.names('vc_model'))}, got {m['name']!r}"
        )
    for key in ("steps", "batch_size", "log_every", "checkpoint_every", "val_every"):
        if t[key] < 1:
            raise ConfigError(f"train.{key} must be at least 1, got {t[key]}")
    if t["lr"] <= 0:
        raise ConfigError(f"train.lr must be positive, got {t['lr']}")
    for key, value in (
        ("train.kl_weight", t["kl_weight"]),
        ("train.kl_anneal_steps", t["kl_anneal_steps"]),
        ("train.autovc_code_weight", t["autovc_code_weight"]),
        ("adversary.weight", a["weight"]),
        ("train.speaker_noise", t["speaker_noise"]),
        ("train.speaker_loss_weight", t["speaker_loss_weight"]),
    ):
        if value < 0:
            raise ConfigError(f"{key} must be >= 0, got {value}")
    if not 0 <= t["warmup_steps"] < t["steps"]:
        raise ConfigError(f"train.warmup_steps must be in [0, steps), got {t['warmup_steps']}")
    if t["max_minutes"] is not None and t["max_minutes"] <= 0:
        raise ConfigError(f"train.max_minutes must be positive or null, got {t['max_minutes']}")
    try:
        check_precision(t["precision"], name="train.precision")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    aug = cfg["augment"]
    for key in ("content_warp", "speaker_warp"):
        if aug[key] is None:
            continue
        try:
            check_warp_bounds(aug[key])
        except (TypeError, ValueError):
            raise ConfigError(
                f"augment.{key} must be null or [low, high] with 0 < low <= high, got {aug[key]!r}"
            ) from None
    if not 0.0 <= aug["speaker_warp_prob"] <= 1.0:
        raise ConfigError(
            f"augment.speaker_warp_prob must be in [0, 1], got {aug['speaker_warp_prob']}"
        )
    e = cfg["eval"]
    if e["match_stats"] not in MATCH_MODES:
        raise ConfigError(
            f"eval.match_stats must be one of {', '.join(MATCH_MODES)}, got {e['match_stats']!r}"
        )
    reference_counts(e)  # raises on a bad eval.n_references
    weight = e["spread_weight"]
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
        raise ConfigError(f"eval.spread_weight must be a number in [0, 1], got {weight!r}")
    if e["enabled"] and e["vocoder"]:
        check_vocoder(e["vocoder"], features)


def check_vocoder(directory: str, features: FeatureConfig) -> None:
    """Refuse an ``eval.vocoder`` that is not a vocoder, or one made for other features, before
    the run trains rather than after."""
    from seqae.audio.features import FeatureMismatchError, check_same_features
    from seqae.audio.neural_vocoder import load_vocoder

    try:
        vocoder = load_vocoder(directory)
    except ValueError as err:
        raise ConfigError(f"eval.vocoder: {err}") from None
    try:
        check_same_features(
            features, vocoder.feature_config, what=f"features vs eval.vocoder {directory}"
        )
    except FeatureMismatchError as err:
        raise ConfigError(str(err)) from None


def prepare_corpus(data_cfg: dict[str, Any], *, is_main: bool) -> SpeechCorpus:
    """Open the corpus at ``data.corpus``, synthesizing the embedded one there when missing."""
    root = Path(data_cfg["corpus"])
    corpus = open_or_build_corpus(
        root,
        preset=data_cfg["build_preset"],
        workers=data_cfg["workers"],
        build=is_main,
        who=RECIPE,
    )
    train = corpus.speakers_with_role("train")
    if data_cfg["sources"]:
        # keep the evaluation voices (seen targets included) whatever their source
        keep_always = set(data_cfg["keep_speakers"] or [])
        train = [s for s in train if corpus.source(s) in data_cfg["sources"] or s in keep_always]
    if data_cfg["max_speakers"]:
        train = train[: data_cfg["max_speakers"]]
    keep = set(train) | {s for s in corpus.speakers if corpus.role(s) != "train"}
    corpus.utterances = [u for u in corpus.utterances if u.speaker in keep]
    if not corpus.utterances or not set(train):
        raise ConfigError(
            f"{root}: no training speakers left after data.sources={data_cfg['sources']} and "
            f"data.max_speakers={data_cfg['max_speakers']}"
        )
    return corpus


def cache_dir(data_cfg: dict[str, Any]) -> Path:
    return Path(data_cfg["cache_dir"] or Path(data_cfg["corpus"]) / "cache")


def load_split(
    corpus: SpeechCorpus, data_cfg: dict[str, Any], features: FeatureConfig, *, split: str
) -> tuple[list[Utterance], list[Tensor]]:
    """Train-speaker utterances of one sentence split and their (cached) log-mels."""
    utts = corpus.select(role="train", split=split)
    mels = load_features(utts, features, cache_dir=cache_dir(data_cfg))
    return utts, mels


class TrainStep(nn.Module):
    """Model + optional adversary and speaker loss as one module, so DDP sees every trained
    parameter.

    ``speaker_noise`` > 0 adds Gaussian noise to the speaker embeddings in training, scaled per
    dimension by the batch's standard deviation (detached, so the encoder cannot shrink it
    away): the decoder must render nearby embeddings alike, which keeps the speaker space smooth
    between the training voices. ``speaker_loss`` (a :class:`~seqae.audio.speaker_loss.GE2ELoss`)
    is computed on the speaker embeddings of the reference and of the crop being rebuilt (two
    utterances of one speaker) when ``forward`` is given that crop and the speaker labels.
    """

    def __init__(
        self,
        model: nn.Module,
        adversary: nn.Module | None,
        *,
        speaker_noise: float = 0.0,
        speaker_loss: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.adversary = adversary
        self.speaker_noise = speaker_noise
        self.speaker_loss = speaker_loss

    def forward(
        self,
        x: Tensor,
        lengths: Tensor,
        ref: Tensor,
        ref_lengths: Tensor,
        target: Tensor | None = None,
        speakers: Tensor | None = None,
    ) -> tuple[Tensor, Any, Tensor, Tensor | None]:
        """Content from ``x``, speaker from ``ref``; the output has ``x``'s length. The last
        item is the speaker loss between ``ref`` and ``target`` (the crop to rebuild, ``x``'s
        lengths) when there is one and both are given, else None."""
        content = self.model.encode_content(x, lengths)
        speaker = self.model.encode_speaker(ref, ref_lengths)
        verification = None
        if self.speaker_loss is not None and target is not None and speakers is not None:
            own = self.model.encode_speaker(target, lengths)
            verification = self.speaker_loss(own, speaker, speakers)
        if self.training and self.speaker_noise > 0 and speaker.shape[0] > 1:
            scale = speaker.detach().std(dim=0, keepdim=True)
            speaker = speaker + self.speaker_noise * scale * torch.randn_like(speaker)
        recon = self.model.decode(content.z, speaker, length=x.shape[-1])
        return recon, content, speaker, verification


class WarpAugment:
    """The recipe's ``augment.*`` frequency warps (:mod:`seqae.audio.augment`) on a batch.

    ``speaker_warp`` turns each crop and its reference, together, into a pseudo-speaker (with
    probability ``speaker_warp_prob``); ``content_warp`` then warps what the content encoder sees
    by a further random factor, so the target the decoder rebuilds keeps the speaker's timbre only
    through the speaker embedding. Factors are a function of ``(seed, step, rank)``, so a resumed
    run continues exactly. Works on normalised mels: undo the normaliser, warp, redo it.
    """

    def __init__(self, aug_cfg: dict[str, Any], features: FeatureConfig, normalizer, seed: int):
        self.content = aug_cfg["content_warp"]
        self.speaker = aug_cfg["speaker_warp"]
        self.speaker_prob = float(aug_cfg["speaker_warp_prob"])
        self.features, self.normalizer, self.seed = features, normalizer, seed

    @property
    def enabled(self) -> bool:
        return self.content is not None or self.speaker is not None

    def _warp(self, mel: Tensor, alphas: Tensor) -> Tensor:
        if bool((alphas == 1).all()):
            return mel
        raw = self.normalizer.inverse(mel)
        return self.normalizer(warp_mels(raw, self.features, alphas))

    def __call__(
        self, x: Tensor, ref: Tensor, step: int, rank: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(content input, reconstruction target, reference)`` for one batch."""
        if not self.enabled:
            return x, x, ref
        g = torch.Generator().manual_seed(self.seed * 999_983 + step * 7_907 + rank + 17)
        n = x.shape[0]
        ones = torch.ones(n, dtype=torch.float64)
        spk = (
            ones
            if self.speaker is None
            else sample_warp_factors(n, self.speaker, g, prob=self.speaker_prob)
        )
        con = ones if self.content is None else sample_warp_factors(n, self.content, g)
        target, ref = self._warp(x, spk), self._warp(ref, spk)
        return self._warp(x, spk * con), target, ref


def masked_l1(recon: Tensor, x: Tensor, lengths: Tensor) -> Tensor:
    """Mean absolute error over the valid frames of each crop."""
    mask = torch.arange(x.shape[-1], device=x.device)[None, :] < lengths[:, None]  # (B, T)
    err = (recon - x).abs().mean(1)  # (B, T)
    return (err * mask).sum() / mask.sum().clamp_min(1)


def bottleneck_term(
    model: nn.Module, content: Any, t_cfg: dict[str, Any], step: int
) -> tuple[Tensor, float]:
    """The content bottleneck's loss term and its weight at ``step``.

    AdaIN-VC: the KL in nats per latent element (the core bottleneck sums it per example), with
    ``train.kl_weight`` reached linearly over ``train.kl_anneal_steps`` (the paper anneals its KL
    weight from 0). VQ: the commitment term, already weighted inside the quantizer. AutoVC: none.
    """
    loss = content.loss.float()
    if model.model_type == "adain_vc":
        ramp = min(1.0, (step + 1) / max(1, t_cfg["kl_anneal_steps"]))
        return loss / content.z[0].numel(), t_cfg["kl_weight"] * ramp
    return loss, 1.0


@torch.no_grad()
def validation_loss(model: nn.Module, batcher: SegmentBatcher, *, n: int, device) -> float:
    """Reconstruction L1 on fixed crops of held-out sentences (the same crops every time)."""
    was = model.training
    model.eval()
    b = batcher.batch(step=-1, batch_size=n)
    x, ref, lengths = b["x"].to(device), b["ref"].to(device), b["lengths"].to(device)
    content = model.encode_content(x, lengths)
    speaker = model.encode_speaker(ref, b["ref_lengths"].to(device))
    recon = model.decode(content.z, speaker, length=x.shape[-1])
    model.train(was)
    return masked_l1(recon, x, lengths).item()


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------
def train(cfg: dict[str, Any], run: RunSession, corpus: SpeechCorpus) -> dict[str, Any]:
    """The training loop (resumed from the run's last checkpoint); saves ``model/`` and
    returns a summary of the training."""
    ctx, d, t = run.ctx, cfg["data"], cfg["train"]
    features = FeatureConfig.from_dict(cfg["features"])
    train_utts, train_mels = load_split(corpus, d, features, split="train")
    val_utts, val_mels = load_split(corpus, d, features, split="test")
    speakers = sorted({u.speaker for u in train_utts})
    spk_index = {s: i for i, s in enumerate(speakers)}

    model_cfg = dict(cfg["model"][cfg["model"]["name"]] or {})
    model_cls = registry.get("vc_model", cfg["model"]["name"])
    model = model_cls.from_config({**model_cfg, "feature_config": features.to_dict()})
    model.normalizer.fit(train_mels)
    norm = model.normalizer
    batcher = SegmentBatcher(
        [norm(m) for m in train_mels],
        [spk_index[u.speaker] for u in train_utts],
        segment_frames=d["segment_frames"],
        seed=cfg["seed"],
    )
    val_batcher = SegmentBatcher(
        [norm(m) for m in val_mels],
        [spk_index[u.speaker] for u in val_utts],
        segment_frames=d["segment_frames"],
        seed=cfg["seed"] + 1,
    )
    adversary = None
    if cfg["adversary"]["weight"] > 0:
        adversary = models.SpeakerAdversary(
            content_dim=model.content_dim,
            num_speakers=len(speakers),
            hidden=cfg["adversary"]["hidden"],
        )
    augment = WarpAugment(cfg["augment"], features, norm, cfg["seed"])
    speaker_loss = GE2ELoss() if t["speaker_loss_weight"] > 0 else None
    step_module = TrainStep(
        model, adversary, speaker_noise=t["speaker_noise"], speaker_loss=speaker_loss
    ).to(ctx.device)
    optimizer = torch.optim.AdamW(
        step_module.parameters(), lr=t["lr"], weight_decay=t["weight_decay"]
    )
    lr_factor = WarmupCosineSchedule(
        warmup=t["warmup_steps"], steps=t["steps"], floor=t["lr_min_ratio"]
    )
    # through a plain function, so LambdaLR keeps the schedule out of checkpoints: on resume the
    # config's train.steps decides, as it does for the loop
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step))
    logger = MetricLogger(run.dir)
    resumed = run.resume(model=step_module, optimizer=optimizer, scheduler=scheduler)
    step = resumed.step if resumed else 0
    ddp = maybe_compile(wrap_model(step_module, ctx), t["compile"])
    ddp.train()

    precision = resolve_precision(t["precision"], ctx.device)
    if ctx.is_main:
        n_params = sum(p.numel() for p in model.parameters())
        print(
            f"{RECIPE}: {cfg['model']['name']} ({n_params / 1e6:.2f} M parameters), "
            f"{len(speakers)} training speakers, {len(train_utts)} utterances, "
            f"{t['steps']} steps of {t['batch_size']} x {d['segment_frames']} frames, "
            f"{precision} on {ctx.device.type}"
        )
    out_of_time = run.out_of_time()  # a resumed run whose budget is spent trains no further
    for _ in progress(range(step, t["steps"]), desc=RECIPE, enabled=ctx.is_main and t["progress"]):
        if out_of_time:
            break
        b = batcher.batch(step, t["batch_size"], rank=ctx.rank)
        x, lengths = b["x"].to(ctx.device), b["lengths"].to(ctx.device)
        ref, ref_lengths = b["ref"].to(ctx.device), b["ref_lengths"].to(ctx.device)
        x_in, x, ref = augment(x, ref, step, ctx.rank)
        speaker_ids = b["speaker"].to(ctx.device)
        with autocast_context(ctx.device, precision=precision):
            recon, content, _, verification = ddp(x_in, lengths, ref, ref_lengths, x, speaker_ids)
        rec = masked_l1(recon.float(), x, lengths)
        bottleneck, weight = bottleneck_term(model, content, t, step)
        terms = {"rec": rec, "bottleneck": bottleneck}
        loss = rec + weight * bottleneck
        if verification is not None:
            terms["speaker_ge2e"] = verification
            loss = loss + t["speaker_loss_weight"] * verification
        if model.model_type == "autovc" and t["autovc_code_weight"] > 0:
            # AutoVC's content-code loss: the reconstruction must encode to the same code
            with autocast_context(ctx.device, precision=precision):
                code = model.encode_content(recon, lengths).z
            terms["code"] = (code.float() - content.z.detach().float()).abs().mean()
            loss = loss + t["autovc_code_weight"] * terms["code"]
        if adversary is not None:
            cls_loss, enc_loss = adversary.loss(
                content.z.float(), speaker_ids, weight=cfg["adversary"]["weight"]
            )
            terms |= {"adv_classifier": cls_loss, "adv_encoder": enc_loss}
            loss = loss + cls_loss + enc_loss
        terms["loss"] = loss
        check_finite(terms, step=step, last_checkpoint=run.checkpoints.latest_path)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(step_module.parameters(), t["grad_clip"])
        optimizer.step()
        scheduler.step()
        step += 1
        if step % t["log_every"] == 0:
            info = {k: v for k, v in content.info.items() if torch.is_tensor(v) and v.numel() == 1}
            logger.scalars(
                {**terms, **info, "lr": scheduler.get_last_lr()[0]}, step=step, prefix="train/"
            )
        if step % t["val_every"] == 0 or step == t["steps"]:
            val = validation_loss(model, val_batcher, n=t["val_batch"], device=ctx.device)
            logger.scalars({"rec": val}, step=step, prefix="val/")
            if ctx.is_main:
                print(
                    f"step {step:6d}  train rec {rec.item():.4f}  val rec {val:.4f}  "
                    f"{run.train_seconds / 60:.1f} min"
                )
        out_of_time = run.out_of_time()
        if run.checkpoint_due(step) or step == t["steps"] or out_of_time:
            run.save(step, model=step_module, optimizer=optimizer, scheduler=scheduler)
    logger.flush()
    stopped = step < t["steps"]
    if stopped and ctx.is_main:
        print(
            f"{RECIPE}: train.max_minutes={t['max_minutes']} reached at step {step}; "
            "resume=true with a larger train.max_minutes trains on"
        )
    if ctx.is_main:
        model.training_speakers = speakers  # who it heard: evaluation tells new voices by it
        model.save_pretrained(run.dir / "model")
    return {
        "steps": step,
        "train_seconds": run.train_seconds,
        "stopped_by_time_budget": stopped,
        "precision": precision,
        "train_speakers": len(speakers),
        "train_utterances": len(train_utts),
        "parameters": sum(p.numel() for p in model.parameters()),
        "final_val_rec": validation_loss(model, val_batcher, n=t["val_batch"], device=ctx.device),
        "world_size": ctx.world_size,
    }


# ---------------------------------------------------------------------------------------------
# figures and evaluation
# ---------------------------------------------------------------------------------------------
def _pca2(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


@torch.no_grad()
def embedding_figure(model: nn.Module, corpus: SpeechCorpus, cfg: dict[str, Any], path: Path):
    """2-D PCA of speaker embeddings and of content codes pooled over time (per-channel mean
    and standard deviation, as the speaker probe sees them), coloured by speaker."""
    from seqae.audio.evaluate import speaker_probe_features

    features = model.feature_config
    spk = corpus.speakers_with_role("train")
    step = max(1, len(spk) // cfg["eval"]["figure_speakers"])
    chosen = spk[::step][: cfg["eval"]["figure_speakers"]] + corpus.speakers_with_role("unseen")
    utts = corpus.select(speakers=chosen, split="test")
    mels = load_features(utts, features, cache_dir=cache_dir(cfg["data"]))
    cont, emb = speaker_probe_features(model, utts, mels)
    labels = [u.speaker for u in utts]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    cmap = plt.get_cmap("tab20")
    for ax, data, title in (
        (axes[0], emb, "speaker embeddings"),
        (axes[1], cont, "content codes (time mean and std)"),
    ):
        p = _pca2(data)
        for i, s in enumerate(chosen):
            sel = [j for j, lab in enumerate(labels) if lab == s]
            marker = "*" if corpus.role(s) == "unseen" else "o"
            ax.scatter(p[sel, 0], p[sel, 1], s=18, color=cmap(i % 20), marker=marker, label=s)
        ax.set_title(f"{title}, PCA (held-out sentences)")
    axes[1].legend(fontsize=6, ncol=2, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def mel_figure(example: dict[str, Any], path: Path) -> None:
    """Mel spectrograms of a source, the target reference and the conversion."""
    fig, axes = plt.subplots(3, 1, figsize=(9, 7))
    for ax, key in zip(axes, ("source", "reference", "converted"), strict=True):
        ax.imshow(example[key], origin="lower", aspect="auto", cmap="magma")
        ax.set_title(f"{key}: {example[key + '_name']}", fontsize=9)
        ax.set_ylabel("mel bin")
    axes[-1].set_xlabel("frame")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reference_counts(e: dict[str, Any]) -> list[int]:
    """``eval.n_references`` (a count, or a list of counts) as a list of distinct counts >= 1."""
    from seqae.audio.evaluate import check_reference_counts

    value = e["n_references"]
    try:
        return check_reference_counts(value if isinstance(value, list) else [value])
    except ValueError:
        raise ConfigError(
            "eval.n_references must be a count >= 1 or a list of distinct counts (e.g. [1, 2]), "
            f"got {value!r}"
        ) from None


def evaluate(run_dir: Path, cfg: dict[str, Any], corpus: SpeechCorpus) -> dict[str, Any]:
    """Score the trained model (``run_dir/model``): one evaluation per reference count, on the
    same conversions; returns the ``eval`` and ``eval_by_references`` entries of the metrics.

    The first count's evaluation is ``eval`` (with the probe, samples and figure). Each further
    count converts the same sources (:func:`seqae.audio.evaluate.make_pairs`) and is compared
    with the first pair for pair; all of them go to ``eval_by_references``. The ceiling and
    floor are scored once for all counts (:func:`seqae.audio.evaluate.evaluate_reference_counts`).
    """
    from seqae.audio.convert import VoiceConverter
    from seqae.audio.evaluate import evaluate_reference_counts, report_reference_counts
    from seqae.audio.neural_vocoder import load_vocoder

    e = cfg["eval"]
    converter = VoiceConverter.from_pretrained(
        run_dir / "model", match_stats=e["match_stats"], spread_weight=e["spread_weight"]
    )
    if e["vocoder"]:
        converter.set_vocoder(load_vocoder(e["vocoder"]))
    embedding_figure(converter.model, corpus, cfg, run_dir / "figures" / "embeddings.png")
    if not e["enabled"]:
        return {}
    counts = reference_counts(e)
    results = evaluate_reference_counts(
        converter,
        corpus,
        counts=counts,
        seen_targets=e["seen_targets"],
        unseen_targets=e["unseen_targets"],
        pairs_per_target=e["pairs_per_target"],
        seed=cfg["seed"],
        samples_dir=run_dir / "samples",
        probe=e["probe"],
        cache_dir=cache_dir(cfg["data"]),
        source_kinds=e["source_kinds"],
        exclude_related=e["exclude_related"],
        pair_voices=pair_voices(e, corpus),
    )
    report = report_reference_counts(results, seed=cfg["seed"])
    tables = report["tables"]
    print("\n\n".join(tables))
    mel_figure(results[counts[0]]["example"], run_dir / "figures" / "conversion_mels.png")
    atomic_write_text(run_dir / "eval_table.md", "\n\n".join(tables) + "\n")
    atomic_write_json(run_dir / "eval_pairs.json", report["rows"])  # every scored output
    metrics = {"eval": report["by_count"][str(counts[0])]}
    if len(counts) > 1:
        metrics["eval_by_references"] = report["by_count"]
    return metrics


def pair_voices(e: dict[str, Any], corpus: SpeechCorpus) -> list[str]:
    """``eval.pair_voices``, or every unseen voice of the corpus when it is null."""
    if e["pair_voices"] is None:
        return corpus.speakers_with_role("unseen")
    unseen = corpus.speakers_with_role("unseen")
    wrong = [v for v in e["pair_voices"] if v not in unseen]
    if wrong:
        raise ConfigError(
            f"eval.pair_voices: {wrong} are not unseen voices of the corpus {corpus.root}; its "
            f"unseen voices are {', '.join(unseen) or 'none'}"
        )
    return list(e["pair_voices"])


def summary_line(summary: dict[str, Any], evaluation: dict[str, Any]) -> str:
    """The run's one-line summary: validation loss and, when evaluated, the conversions' scores."""
    line = f"{summary['steps']} steps, val rec {summary['final_val_rec']:.4f}"
    scores = evaluation.get("eval", {})
    for group in ("seen", "unseen", "unseen_same_sex", "unseen_cross_sex"):
        if group in scores:
            c = scores[group]["converted"]
            line += (
                f" | {group}: sim to target {c['sim_target']:.3f}, closer {c['closer']:.2f}, "
                f"WER {c['wer']:.3f}"
            )
    return line


def main(cfg: dict[str, Any]) -> dict[str, Any] | None:
    validate(cfg)
    threads = torch.get_num_threads()
    if cfg["train"]["threads"] > 0:
        torch.set_num_threads(cfg["train"]["threads"])
    try:
        ctx = init_distributed(device_preference=cfg["device"])
        seed_everything(cfg["seed"])
        corpus = prepare_corpus(cfg["data"], is_main=ctx.is_main)
        if cfg["eval"]["enabled"]:
            pair_voices(cfg["eval"], corpus)  # a bad voice name is told before training
        with RunSession(cfg, recipe=RECIPE, ctx=ctx, neutral=NEUTRAL_KEYS) as run:
            summary = train(cfg, run, corpus)
            if not ctx.is_main:
                return None
            # named by the step it scores: a run trained on past its time budget is scored again
            evaluation = run.part(
                f"evaluation_step_{summary['steps']}", lambda: evaluate(run.dir, cfg, corpus)
            )
            return run.finish(
                {"train": summary, **evaluation}, summary=summary_line(summary, evaluation)
            )
    finally:
        torch.set_num_threads(threads)
