"""VQ-VAE (van den Oord et al. 2017, arXiv 1711.00937) on the 8x8 digits or the procedural shapes.

    seqae run vqvae                                   # digits, a couple of minutes on a CPU
    seqae run vqvae --config vqvae_shapes             # shapes (dSprites-like), a few minutes
    seqae run vqvae --config vqvae_tiny               # seconds; what the tests run
    torchrun --nproc_per_node=2 -m seqae.cli run vqvae

Data and model come from the library: ``data.name`` picks the data
(:mod:`seqae.data.images`: ``digits`` as vectors of 64 pixels, ``shapes`` or ``npz`` as square
images) and with it the architecture (:mod:`seqae.core.vqvae`): an MLP whose output is read as
``model.num_codes`` code vectors for vectors, a convolutional encoder quantised at every
position of its ``(R / 2^L) x (R / 2^L)`` map for images, each code one of
``model.codebook_size``. The quantiser is seqae's :class:`~seqae.core.VectorQuantizer`:
nearest-code lookup with a straight-through gradient, commitment loss weighted by beta (eq. 3 of
the paper), a codebook learned by exponential moving averages (App. A.1) or by the codebook loss,
optionally k-means initialised and with dead-code restarts (``quantizer`` block). The
reconstruction loss is the mean squared error (``model.likelihood: gaussian``) or, for binary
images, the Bernoulli cross-entropy (``bernoulli``). The weights of the epoch with the best
validation MSE are kept.

Writes to ``output_dir``: config.yaml, checkpoints/ (resumable: ``resume=true``, also to extend
``train.epochs``), model/ (best weights as config.json + model.safetensors), tb/, figures/
(reconstructions, codebook usage) and metrics.json (test MSE, codebook perplexity, codes used,
dead codes, bits per image).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from seqae.codes import bit_width  # noqa: E402
from seqae.config import ConfigError  # noqa: E402
from seqae.core import Autoencoder  # noqa: E402
from seqae.core.vqvae import (  # noqa: E402
    build_vqvae,
    check_vqvae_fits,
    check_vqvae_settings,
    reconstruction_loss,
)
from seqae.data.images import ImageSplits, check_image_data_settings, load_image_splits  # noqa: E402
from seqae.metrics import codebook_usage, reconstruction_error  # noqa: E402
from seqae.training import (  # noqa: E402
    RESULT_NEUTRAL_KEYS,
    EarlyStopping,
    MetricLogger,
    RunSession,
    autocast_context,
    check_finite,
    init_distributed,
    make_loader,
    maybe_compile,
    progress,
    seed_everything,
    set_epoch,
    wrap_model,
)


# ---------------------------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------------------------
def validate(cfg: dict[str, Any]) -> None:
    """Refuse impossible settings before any data is loaded or model built."""
    check_image_data_settings(cfg["data"])
    check_vqvae_settings(cfg["model"], cfg["quantizer"])
    t = cfg["train"]
    for key in ("epochs", "batch_size", "patience", "checkpoint_every", "log_every"):
        if t[key] < 1:
            raise ConfigError(f"train.{key} must be at least 1, got {t[key]}")
    if t["threads"] < 0:
        raise ConfigError(f"train.threads must be >= 0 (0: torch's default), got {t['threads']}")
    if t["lr"] <= 0:
        raise ConfigError(f"train.lr must be positive, got {t['lr']}")


# ---------------------------------------------------------------------------------------------
# train and evaluate
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def code_statistics(model: Autoencoder, x: Tensor, *, batch_size: int = 512) -> dict[str, Any]:
    """Reconstruction MSE and codebook usage of ``x`` (eval mode)."""
    was_training = model.training
    model.eval()
    indices = torch.cat([model.encode(xb).info["indices"].cpu() for xb in x.split(batch_size)])
    model.train(was_training)
    K = model.bottleneck.codebook_size
    usage = codebook_usage(indices, K)
    return {
        "mse": reconstruction_error(model, x, batch_size=batch_size).mean,
        "perplexity": usage.perplexity,
        "codes_used": usage.used,
        "dead_codes": usage.dead_codes,
        "counts": usage.counts,
        "positions": math.prod(indices.shape[1:]),
    }


def train(cfg: dict[str, Any], run: RunSession, data: ImageSplits) -> dict[str, Any]:
    """The training loop; returns a summary of the run."""
    ctx = run.ctx
    t = cfg["train"]
    loader = make_loader(
        TensorDataset(data.train), batch_size=t["batch_size"], shuffle=True, seed=cfg["seed"],
        ctx=ctx,
    )  # fmt: skip
    x_val = data.val.to(ctx.device)
    model = build_vqvae(cfg["model"], cfg["quantizer"], data.train).to(ctx.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=t["lr"])
    stopper = EarlyStopping(patience=t["patience"], min_delta=t["min_delta"])
    logger = MetricLogger(run.dir)
    run.track(early_stopping=stopper)
    resumed = run.resume(model=model, optimizer=optimizer)
    step, start_epoch = (resumed.step, resumed.extra["epoch"] + 1) if resumed else (0, 0)
    ddp_model = maybe_compile(wrap_model(model, ctx), t["compile"])

    epoch = start_epoch - 1
    for epoch in range(start_epoch, t["epochs"]):
        if stopper.should_stop:
            break
        set_epoch(loader, epoch)
        ddp_model.train()
        for (x,) in progress(loader, desc=f"epoch {epoch}", enabled=ctx.is_main and t["progress"]):
            x = x.to(ctx.device, non_blocking=True)
            with autocast_context(ctx.device):
                out = ddp_model(x)
            rec = reconstruction_loss(model, out.x_hat.float(), x)
            vq = out.loss.float()  # beta * commitment (+ codebook loss without EMA)
            loss = rec + vq
            check_finite(
                {"loss": loss, "rec": rec, "vq": vq},
                step=step,
                last_checkpoint=run.checkpoints.latest_path,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if t["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"])
            optimizer.step()
            step += 1
            if step % t["log_every"] == 0:
                logger.scalars(
                    {
                        "loss": loss,
                        "rec": rec,
                        "vq": vq,
                        "perplexity": out.info["perplexity"],
                        "dead_codes": out.info["dead_codes"],
                    },
                    step=step,
                    prefix="train/",
                )

        val = code_statistics(model, x_val)
        logger.scalars(
            {k: val[k] for k in ("mse", "perplexity", "codes_used")}, step=step, prefix="val/"
        )
        stopper.step(val["mse"])
        if stopper.improved and ctx.is_main:
            model.save_pretrained(run.dir / "model")
        out_of_time = run.out_of_time()
        last = epoch == t["epochs"] - 1 or stopper.should_stop or out_of_time
        if run.checkpoint_due(epoch + 1) or last:
            run.save(step, model=model, optimizer=optimizer, extra={"epoch": epoch})
        if ctx.is_main and (epoch % max(1, t["epochs"] // 10) == 0 or last):
            print(
                f"epoch {epoch:4d} step {step:6d}  val MSE {val['mse']:.5f}  perplexity "
                f"{val['perplexity']:6.1f}  codes used {val['codes_used']}/{cfg['model']['codebook_size']}"
            )
        if out_of_time:
            if ctx.is_main:
                print(f"vqvae: train.max_minutes={t['max_minutes']} reached at epoch {epoch}")
            break
    logger.flush()
    return {
        "epochs_run": epoch + 1,
        "steps": step,
        "train_seconds": run.train_seconds,
        "stopped_by_time_budget": run.out_of_time(),
        "best_val_mse": stopper.best,
        "world_size": ctx.world_size,
        "compiled": bool(t["compile"]),
    }


@torch.no_grad()
def evaluate(
    run_dir: Path, cfg: dict[str, Any], data: ImageSplits, summary: dict[str, Any]
) -> dict[str, Any]:
    """Test metrics of the best model and figures (main process only)."""
    device = torch.device("cuda" if torch.cuda.is_available() and cfg["device"] != "cpu" else "cpu")
    model = Autoencoder.from_pretrained(run_dir / "model", map_location=device).eval()
    x_test = data.test.to(device)
    stats = code_statistics(model, x_test)
    K = model.bottleneck.codebook_size
    # context for the MSE: predicting the training mean image for every test image
    mean_image_mse = torch.mean((data.train.mean(0).to(device) - x_test) ** 2).item()
    metrics = {
        "dataset": cfg["data"]["name"],
        "test_mse": stats["mse"],
        "test_perplexity": stats["perplexity"],
        "test_codes_used": stats["codes_used"],
        "test_dead_codes": stats["dead_codes"],
        "codebook_size": K,
        "codes_per_sample": stats["positions"],
        "bits_per_sample": stats["positions"] * bit_width(K),  # packed: ceil(log2 K) per code
        "mean_image_mse": mean_image_mse,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "n_train": len(data.train),
        "n_test": len(data.test),
        **summary,
    }
    figures = save_figures(model, x_test, stats, run_dir / "figures")
    with MetricLogger(run_dir) as logger:
        for name, fig in figures.items():
            logger.image(f"figures/{name}", fig, step=summary["steps"])
    for fig in figures.values():
        plt.close(fig)
    return metrics


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def as_images(x: Tensor) -> np.ndarray:
    """``(N, 64)`` digits or ``(N, C, R, R)`` images -> ``(N, H, W)`` or ``(N, H, W, 3)`` arrays."""
    x = x.detach().cpu().float().clamp(0, 1)
    if x.dim() == 2:
        side = math.isqrt(x.shape[1])
        return x.view(-1, side, side).numpy()
    if x.shape[1] == 3:
        return x.permute(0, 2, 3, 1).numpy()
    return x[:, 0].numpy()


def show_rows(rows: list[tuple[str, Tensor]], *, width: float = 8.0) -> plt.Figure:
    """One figure row per ``(label, images)`` pair, images side by side."""
    n = rows[0][1].shape[0]
    fig, axes = plt.subplots(
        len(rows), n, figsize=(width, width / n * len(rows) * 1.1), squeeze=False
    )
    for r, (label, images) in enumerate(rows):
        for c, img in enumerate(as_images(images)):
            ax = axes[r, c]
            ax.imshow(img, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    return fig


def save_figures(
    model: Autoencoder, x: Tensor, stats: dict[str, Any], out_dir: Path
) -> dict[str, plt.Figure]:
    out_dir.mkdir(parents=True, exist_ok=True)
    figs: dict[str, plt.Figure] = {}
    n = min(12, x.shape[0])
    figs["reconstructions"] = show_rows([("test", x[:n]), ("VQ-VAE", model.reconstruct(x[:n]))])
    figs["reconstructions"].suptitle(f"test MSE {stats['mse']:.4f}", fontsize=9)

    counts = stats["counts"].sort(descending=True).values.numpy()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(np.arange(len(counts)), np.maximum(counts, 0.8), width=1.0, color="tab:blue")
    ax.set_yscale("log")  # unused codes are drawn as a stub below 1
    ax.set_xlabel("code (sorted by test-set count)")
    ax.set_ylabel("count (log scale)")
    ax.set_title(
        f"codebook usage on the test set: {stats['codes_used']}/{len(counts)} codes used, "
        f"perplexity {stats['perplexity']:.1f}",
        fontsize=9,
    )
    figs["codebook_usage"] = fig

    for name, f in figs.items():
        f.tight_layout()
        f.savefig(out_dir / f"{name}.png", dpi=120)
    return figs


def main(cfg: dict[str, Any]) -> dict[str, Any] | None:
    validate(cfg)
    data = load_image_splits(cfg["data"], seed=cfg["seed"])
    check_vqvae_fits(cfg["model"], data.train)
    threads = torch.get_num_threads()
    if cfg["train"]["threads"] > 0:
        # small models on a busy CPU: one intra-op thread avoids OpenMP spin-waiting, which
        # slowed steps by an order of magnitude on a shared 2-core machine
        torch.set_num_threads(cfg["train"]["threads"])
    try:
        ctx = init_distributed(device_preference=cfg["device"])
        seed_everything(cfg["seed"])
        # a run may be extended: resume=true train.epochs=N continues it to N epochs
        neutral = (*RESULT_NEUTRAL_KEYS, "train.epochs")
        with RunSession(cfg, recipe="vqvae", ctx=ctx, neutral=neutral) as run:
            summary = train(cfg, run, data)
            if not ctx.is_main:
                return None
            metrics = evaluate(run.dir, cfg, data, summary)
            return run.finish(
                metrics,
                summary=(
                    f"({metrics['dataset']}) test MSE {metrics['test_mse']:.5f} (mean image "
                    f"{metrics['mean_image_mse']:.5f}) | perplexity "
                    f"{metrics['test_perplexity']:.1f}, {metrics['test_codes_used']}/"
                    f"{metrics['codebook_size']} codes used, {metrics['test_dead_codes']} dead | "
                    f"{metrics['bits_per_sample']} bits per sample"
                ),
            )
    finally:
        torch.set_num_threads(threads)
