"""A trained vocoder for the speech corpus's log-mels, to replace Griffin-Lim in voice conversion.

    seqae run vocoder                          # the full config: ~45 min on 2 CPU cores
    seqae run vocoder --config vocoder_tiny    # seconds; what the tests run
    seqae convert --model runs/vc/model --vocoder runs/vocoder/model --source A.wav --target B.wav --out C.wav
    seqae vc-eval --model runs/vc/model --vocoder runs/vocoder/model --corpus runs/speech_corpus
    torchrun --nproc_per_node=2 -m seqae.cli run vocoder

Stages:

1. **Corpus.** As in the ``vc`` recipe: ``data.corpus`` is a VCTK-layout folder, synthesized
   there when missing. The vocoder trains on the ``train`` sentences of the ``train`` speakers
   only; the unseen voices (awb, rms) and the ``test`` sentences are kept for evaluation.
2. **Training.** :class:`~seqae.audio.neural_vocoder.ISTFTVocoder` (a ConvNeXt network that
   predicts each frame's STFT, then an inverse STFT, after Vocos, arXiv 2306.00814) reads the
   log-mel of a random crop (``data.segment_frames`` frames) and must give back the crop's
   waveform. Loss (:class:`~seqae.audio.neural_vocoder.VocoderLoss`): log-mel L1 plus
   multi-resolution STFT spectral convergence and log-magnitude L1; no discriminator, so it
   trains on a CPU. Crops are a function of ``(seed, step, rank)``, so a resumed run continues
   exactly.
3. **Evaluation.** Held-out sentences of ``eval.voices`` (seen and unseen voices) are
   resynthesised from their log-mels by Griffin-Lim and by the trained vocoder, and scored
   beside the original audio: pocketsphinx WER (with a bootstrap standard error), resemblyzer
   similarity to the original, and log-mel L1 of the output against the original's.

Writes to ``output_dir``: config.yaml, run.json, checkpoints/, model/ (``--vocoder`` of ``seqae
convert`` and ``seqae vc-eval``), tb/, figures/vocoder_mels.png, samples/, eval_table.md,
eval_rows.json (every scored output), parts/ and metrics.json.

Training and evaluation are the two parts of one run (:class:`seqae.training.RunSession`):
``resume=true`` (vocoder.yaml's default) continues an interrupted training from its last
checkpoint, and reuses the evaluation only when it finished. ``train.max_minutes`` counts over
all of a run's resumes; ``resume=true train.max_minutes=120`` trains a run it stopped on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from seqae.audio.corpus import PRESETS, open_or_build_corpus  # noqa: E402
from seqae.audio.dataset import SpeechCorpus, Utterance, WaveformBatcher  # noqa: E402
from seqae.audio.features import FeatureConfig, log_mel  # noqa: E402
from seqae.audio.io import load_audio, save_audio  # noqa: E402
from seqae.audio.neural_vocoder import ISTFTVocoder, VocoderLoss  # noqa: E402
from seqae.audio.vocoder import GriffinLimVocoder, Vocoder  # noqa: E402
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

RECIPE = "vocoder"
#: Keys a user may set to null although the config gives them a value (null: no budget).
NULLABLE_KEYS = ("train.max_minutes",)
#: Keys that cannot change the result of a run: synthesis processes, and the thread count (which,
#: like the device, changes only the last bits of what a resumed run computes).
NEUTRAL_KEYS = (*RESULT_NEUTRAL_KEYS, "data.workers", "train.threads")


# ---------------------------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------------------------
def validate(cfg: dict[str, Any]) -> None:
    """Refuse impossible settings before the corpus is built or a model is made."""
    d, t, e = cfg["data"], cfg["train"], cfg["eval"]
    if not d["corpus"]:
        raise ConfigError("data.corpus must name a corpus directory (it is built when missing)")
    if d["build_preset"] not in PRESETS:
        raise ConfigError(
            f"data.build_preset must be one of {', '.join(PRESETS)}, got {d['build_preset']!r}"
        )
    if d["segment_frames"] < 8:
        raise ConfigError(f"data.segment_frames must be >= 8, got {d['segment_frames']}")
    try:
        FeatureConfig.from_dict(cfg["features"])
    except (KeyError, ValueError) as err:
        raise ConfigError(f"features: {err.args[0]}") from None
    for key in ("steps", "batch_size", "log_every", "checkpoint_every", "val_every", "val_batch"):
        if t[key] < 1:
            raise ConfigError(f"train.{key} must be at least 1, got {t[key]}")
    if t["lr"] <= 0:
        raise ConfigError(f"train.lr must be positive, got {t['lr']}")
    if not 0 <= t["warmup_steps"] < t["steps"]:
        raise ConfigError(f"train.warmup_steps must be in [0, steps), got {t['warmup_steps']}")
    if t["max_minutes"] is not None and t["max_minutes"] <= 0:
        raise ConfigError(f"train.max_minutes must be positive or null, got {t['max_minutes']}")
    try:
        check_precision(t["precision"], name="train.precision")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if e["utterances_per_voice"] < 1:
        raise ConfigError(
            f"eval.utterances_per_voice must be at least 1, got {e['utterances_per_voice']}"
        )


def prepare_corpus(data_cfg: dict[str, Any], *, is_main: bool) -> SpeechCorpus:
    """Open the corpus at ``data.corpus``, synthesizing the embedded one there when missing."""
    return open_or_build_corpus(
        data_cfg["corpus"],
        preset=data_cfg["build_preset"],
        workers=data_cfg["workers"],
        build=is_main,
        who=RECIPE,
    )


def load_waveforms(utts: list[Utterance], features: FeatureConfig) -> list[torch.Tensor]:
    return [load_audio(u.path, sample_rate=features.sample_rate) for u in utts]


@torch.no_grad()
def validation_terms(
    vocoder: ISTFTVocoder, loss_fn: VocoderLoss, batch: torch.Tensor, device
) -> dict[str, float]:
    """The loss terms on fixed crops of held-out sentences (the same crops every time)."""
    was = vocoder.training
    vocoder.eval()
    wav = batch.to(device)
    mel = log_mel(wav, vocoder.feature_config)
    terms = loss_fn(vocoder(mel), wav, mel)
    vocoder.train(was)
    return {k: v.item() for k, v in terms.items()}


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------
def train(cfg: dict[str, Any], run: RunSession, corpus: SpeechCorpus) -> dict[str, Any]:
    """The training loop (resumed from the run's last checkpoint); saves ``model/`` and
    returns a summary of the training."""
    ctx, d, t = run.ctx, cfg["data"], cfg["train"]
    features = FeatureConfig.from_dict(cfg["features"])
    train_utts = corpus.select(role="train", split="train")
    val_utts = corpus.select(role="train", split="test")
    if not train_utts or not val_utts:
        raise ValueError(
            f"{corpus.root}: need train-speaker utterances of both sentence splits, got "
            f"{len(train_utts)} train and {len(val_utts)} test"
        )
    if ctx.is_main:
        print(f"{RECIPE}: reading {len(train_utts) + len(val_utts)} utterances")
    train_wavs = load_waveforms(train_utts, features)
    val_wavs = load_waveforms(val_utts, features)

    vocoder = ISTFTVocoder.from_config({**cfg["model"], "feature_config": features.to_dict()})
    seg = d["segment_frames"] * features.hop_length
    batcher = WaveformBatcher(train_wavs, segment_samples=seg, seed=cfg["seed"])
    val_batch = WaveformBatcher(val_wavs, segment_samples=seg, seed=cfg["seed"] + 1).batch(
        step=-1, batch_size=t["val_batch"]
    )
    # the loss section holds VocoderLoss's keywords: resolutions, mel_weight, stft_weight
    loss_fn = VocoderLoss(features, **cfg["loss"]).to(ctx.device)
    vocoder.to(ctx.device)
    optimizer = torch.optim.AdamW(
        vocoder.parameters(), lr=t["lr"], betas=tuple(t["betas"]), weight_decay=t["weight_decay"]
    )
    lr_factor = WarmupCosineSchedule(
        warmup=t["warmup_steps"], steps=t["steps"], floor=t["lr_min_ratio"]
    )
    # through a plain function, so LambdaLR keeps the schedule out of checkpoints: on resume the
    # config's train.steps decides, as it does for the loop
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step))
    logger = MetricLogger(run.dir)
    resumed = run.resume(model=vocoder, optimizer=optimizer, scheduler=scheduler)
    step = resumed.step if resumed else 0
    if resumed is None:  # a resumed run has the statistics in its checkpoint
        vocoder.normalizer.fit(log_mel(w, features) for w in train_wavs)
    ddp = maybe_compile(wrap_model(vocoder, ctx), t["compile"])
    ddp.train()
    precision = resolve_precision(t["precision"], ctx.device)
    if ctx.is_main:
        n_params = sum(p.numel() for p in vocoder.parameters())
        hours = sum(w.numel() for w in train_wavs) / features.sample_rate / 3600
        print(
            f"{RECIPE}: ISTFTVocoder ({n_params / 1e6:.2f} M parameters), {len(train_utts)} "
            f"utterances ({hours:.2f} h), {t['steps']} steps of {t['batch_size']} x "
            f"{d['segment_frames']} frames, {precision} on {ctx.device.type}"
        )
    out_of_time = run.out_of_time()  # a resumed run whose budget is spent trains no further
    for _ in progress(range(step, t["steps"]), desc=RECIPE, enabled=ctx.is_main and t["progress"]):
        if out_of_time:
            break
        wav = batcher.batch(step, t["batch_size"], rank=ctx.rank).to(ctx.device)
        mel = log_mel(wav, features)  # (B, n_mels, segment_frames + 1)
        # the network under autocast; its output (the vocoder returns float32 audio) and the
        # loss's STFTs and mel projections stay float32
        with autocast_context(ctx.device, precision=precision):
            audio = ddp(mel)
        terms = loss_fn(audio.float(), wav, mel)
        check_finite(terms, step=step, last_checkpoint=run.checkpoints.latest_path)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        if t["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(vocoder.parameters(), t["grad_clip"])
        optimizer.step()
        scheduler.step()
        step += 1
        if step % t["log_every"] == 0:
            logger.scalars({**terms, "lr": scheduler.get_last_lr()[0]}, step=step, prefix="train/")
        if step % t["val_every"] == 0 or step == t["steps"]:
            val = validation_terms(vocoder, loss_fn, val_batch, ctx.device)
            logger.scalars(val, step=step, prefix="val/")
            if ctx.is_main:
                print(
                    f"step {step:6d}  train loss {terms['loss'].item():.4f}  val loss "
                    f"{val['loss']:.4f} (mel {val['mel']:.4f}, sc {val['sc']:.4f}, log-mag "
                    f"{val['log_mag']:.4f})  {run.train_seconds / 60:.1f} min"
                )
        out_of_time = run.out_of_time()
        if run.checkpoint_due(step) or step == t["steps"] or out_of_time:
            run.save(step, model=vocoder, optimizer=optimizer, scheduler=scheduler)
    logger.flush()
    stopped = step < t["steps"]
    if stopped and ctx.is_main:
        print(
            f"{RECIPE}: train.max_minutes={t['max_minutes']} reached at step {step}; "
            "resume=true with a larger train.max_minutes trains on"
        )
    if ctx.is_main:
        vocoder.save_pretrained(run.dir / "model")
    return {
        "steps": step,
        "train_seconds": run.train_seconds,
        "stopped_by_time_budget": stopped,
        "precision": precision,
        "train_utterances": len(train_utts),
        "parameters": sum(p.numel() for p in vocoder.parameters()),
        "final_val": validation_terms(vocoder, loss_fn, val_batch, ctx.device),
        "world_size": ctx.world_size,
    }


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------
def eval_utterances(corpus: SpeechCorpus, e: dict[str, Any], seed: int) -> list[Utterance]:
    """``eval.utterances_per_voice`` held-out sentences of each of ``eval.voices``."""
    missing = [v for v in e["voices"] if v not in corpus.speakers]
    if missing:
        raise ConfigError(f"eval.voices {missing} are not in the corpus; it has {corpus.speakers}")
    rng = np.random.default_rng(seed)
    chosen: list[Utterance] = []
    for voice in e["voices"]:
        utts = corpus.select(speakers=[voice], split="test")
        k = min(e["utterances_per_voice"], len(utts))
        chosen += [utts[i] for i in sorted(rng.choice(len(utts), size=k, replace=False))]
    return chosen


@torch.no_grad()
def compare_vocoders(
    vocoders: dict[str, Vocoder],
    utts: list[Utterance],
    corpus: SpeechCorpus,
    features: FeatureConfig,
    *,
    samples_dir: Path | None = None,
    n_samples: int = 0,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Resynthesise each utterance's log-mel with every vocoder; score them and the original.

    The first ``n_samples`` utterances' resyntheses are written to ``samples_dir`` as
    ``<speaker>_<utterance>_<system>.wav``. Returns per-utterance rows and one example's mels
    for the figure.
    """
    from seqae.metrics.speech import SpeakerEmbedder, Transcriber

    embedder, transcriber = SpeakerEmbedder(), Transcriber()
    rows: list[dict[str, Any]] = []
    example: dict[str, Any] = {}
    for k, u in enumerate(progress(utts, desc=f"{RECIPE} eval")):
        wav = load_audio(u.path, sample_rate=features.sample_rate)
        mel = log_mel(wav, features)
        ref_emb = embedder.embed(wav)
        first = not example
        outputs = {"original": wav} | {name: v(mel).float().cpu() for name, v in vocoders.items()}
        if samples_dir is not None and k < n_samples:
            for name in vocoders:
                out_path = samples_dir / f"{u.speaker}_{u.utt_id}_{name}.wav"
                save_audio(out_path, outputs[name], features.sample_rate)
        for system, out in outputs.items():
            out_mel = log_mel(out, features)
            n = min(out_mel.shape[-1], mel.shape[-1])
            rows.append(
                {
                    "voice": u.speaker,
                    # voices the vocoder trained on (other sentences) or never heard
                    "group": "unseen" if corpus.role(u.speaker) == "unseen" else "seen",
                    "utterance": u.utt_id,
                    "system": system,
                    "text": u.text or "",
                    "hypothesis": transcriber.transcribe(out.numpy()),
                    "similarity": float(np.dot(embedder.embed(out), ref_emb)),
                    "mel_l1": float((out_mel[:, :n] - mel[:, :n]).abs().mean()),
                }
            )
            if first:
                example |= {"name": f"{u.speaker} {u.utt_id}", system: out_mel.numpy()}
    return rows, example


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{group: {system: {wer, wer_se, similarity, mel_l1, n}}}``, group ``seen``/``unseen``."""
    from seqae.metrics.speech import corpus_wer_bootstrap

    out: dict[str, dict[str, dict[str, float]]] = {}
    for group in sorted({r["group"] for r in rows}):
        out[group] = {}
        for system in dict.fromkeys(r["system"] for r in rows):
            sel = [r for r in rows if r["group"] == group and r["system"] == system]
            wer = corpus_wer_bootstrap([r["text"] for r in sel], [r["hypothesis"] for r in sel])
            out[group][system] = {
                "n": len(sel),
                "wer": wer.wer,
                "wer_se": wer.se,
                "similarity": float(np.mean([r["similarity"] for r in sel])),
                "mel_l1": float(np.mean([r["mel_l1"] for r in sel])),
            }
    return out


def format_table(summary: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = [
        "| voices | system | n | WER | similarity to the original | log-mel L1 |",
        "|---|---|---|---|---|---|",
    ]
    for group, systems in summary.items():
        for system, s in systems.items():
            lines.append(
                f"| {group} | {system} | {s['n']} | {s['wer']:.3f} ± {s['wer_se']:.3f} | "
                f"{s['similarity']:.3f} | {s['mel_l1']:.3f} |"
            )
    return "\n".join(lines)


def mel_figure(example: dict[str, Any], systems: list[str], path: Path) -> None:
    fig, axes = plt.subplots(len(systems), 1, figsize=(9, 2.4 * len(systems)))
    for ax, key in zip(np.atleast_1d(axes), systems, strict=True):
        ax.imshow(example[key], origin="lower", aspect="auto", cmap="magma")
        ax.set_title(f"{key}: {example['name']} (log-mel of the output)", fontsize=9)
        ax.set_ylabel("mel bin")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evaluate(
    run_dir: Path, cfg: dict[str, Any], corpus: SpeechCorpus, utts: list[Utterance]
) -> dict[str, Any]:
    """Resynthesise ``utts`` with Griffin-Lim and the trained vocoder (``run_dir/model``) and
    score them; returns the ``eval`` entry of the metrics."""
    from seqae.audio.neural_vocoder import load_vocoder

    e = cfg["eval"]
    vocoder = load_vocoder(run_dir / "model")
    features = vocoder.feature_config
    vocoders: dict[str, Vocoder] = {
        "griffin_lim": GriffinLimVocoder(features, n_iter=e["griffin_lim_iters"]),
        "trained": vocoder,
    }
    rows, example = compare_vocoders(
        vocoders,
        utts,
        corpus,
        features,
        samples_dir=run_dir / "samples",
        n_samples=e["n_samples"],
    )
    scores = summarize(rows)
    table = format_table(scores)
    atomic_write_text(run_dir / "eval_table.md", table + "\n")
    atomic_write_json(run_dir / "eval_rows.json", rows)  # every scored output
    mel_figure(example, ["original", *vocoders], run_dir / "figures" / "vocoder_mels.png")
    print(table)
    return {"eval": scores}


def main(cfg: dict[str, Any]) -> dict[str, Any] | None:
    validate(cfg)
    threads = torch.get_num_threads()
    if cfg["train"]["threads"] > 0:
        torch.set_num_threads(cfg["train"]["threads"])
    try:
        ctx = init_distributed(device_preference=cfg["device"])
        seed_everything(cfg["seed"])
        corpus = prepare_corpus(cfg["data"], is_main=ctx.is_main)
        e = cfg["eval"]
        # chosen first, so that a voice missing from the corpus is refused before anything runs
        utts = eval_utterances(corpus, e, cfg["seed"]) if e["enabled"] else []
        with RunSession(cfg, recipe=RECIPE, ctx=ctx, neutral=NEUTRAL_KEYS) as run:
            summary = train(cfg, run, corpus)
            if not ctx.is_main:
                return None
            evaluation = {}
            if e["enabled"]:  # named by the step it scores: a run trained on is scored again
                evaluation = run.part(
                    f"evaluation_step_{summary['steps']}",
                    lambda: evaluate(run.dir, cfg, corpus, utts),
                )
            line = f"{summary['steps']} steps, val loss {summary['final_val']['loss']:.4f}"
            return run.finish({"train": summary, **evaluation}, summary=line)
    finally:
        torch.set_num_threads(threads)
