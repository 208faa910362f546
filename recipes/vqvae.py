"""VQ-VAE (van den Oord et al. 2017, arXiv 1711.00937) on the 8x8 digits or the procedural shapes.

    seqae run vqvae                                   # digits, a couple of minutes on a CPU
    seqae run vqvae --config vqvae_shapes             # shapes (dSprites-like), a few minutes
    seqae run vqvae --config vqvae_tiny               # seconds; what the tests run
    torchrun --nproc_per_node=2 -m seqae.cli run vqvae

Model. ``data.name`` picks the data and with it the architecture:

- ``digits`` (vectors of 64 pixels in [0, 1]): an MLP encoder 64-h1-h2-(M*D) whose output is
  read as ``M = model.num_codes`` code vectors of size ``D = model.code_dim``, each quantised
  to the nearest of ``K = model.codebook_size`` codes, and the mirrored MLP decoder;
- ``shapes`` or ``npz`` (square images ``(C, R, R)``): a convolutional encoder (stride 2 per
  layer of ``model.channels``) giving a ``(D, R / 2^L, R / 2^L)`` map, quantised at every
  position (``feature_dim=1``), and the mirrored transposed-convolution decoder.

The quantiser is seqae's :class:`~seqae.core.VectorQuantizer`: nearest-code lookup with a
straight-through gradient, commitment loss weighted by beta (eq. 3 of the paper), a codebook
learned by exponential moving averages (App. A.1) or by the codebook loss, optionally k-means
initialised and with dead-code restarts (``quantizer`` block). The reconstruction loss is the
mean squared error (``model.likelihood: gaussian``) or, for binary images, the Bernoulli
cross-entropy (``bernoulli``). The weights of the epoch with the best validation MSE are kept.

Writes to ``output_dir``: config.yaml, checkpoints/ (resumable), model/ (best weights as
config.json + model.safetensors), tb/, figures/ (reconstructions, codebook usage) and
metrics.json (test MSE, codebook perplexity, codes used, dead codes, bits per image).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from seqae.codes import bit_width  # noqa: E402
from seqae.config import save_config  # noqa: E402
from seqae.core import Autoencoder, losses  # noqa: E402
from seqae.data import NpzDataset, ShapesDataset, load_digits_splits, validate_array  # noqa: E402
from seqae.data.shapes import DEFAULT_FACTOR_SIZES  # noqa: E402
from seqae.metrics import codebook_usage, reconstruction_error  # noqa: E402
from seqae.training import (  # noqa: E402
    CheckpointManager,
    EarlyStopping,
    MetricLogger,
    autocast_context,
    check_finite,
    cleanup,
    init_distributed,
    make_loader,
    progress,
    seed_everything,
    set_epoch,
    wrap_model,
    write_metrics_json,
)

DATASETS = ("digits", "shapes", "npz")
LIKELIHOODS = ("gaussian", "bernoulli")
NORMS = ("batch", "group", "layer", None)
SHAPES_TOTAL = math.prod(DEFAULT_FACTOR_SIZES)  # images in the full shapes factor product


# ---------------------------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------------------------
def validate(cfg: dict[str, Any]) -> None:
    """Refuse impossible settings before any data is loaded or model built."""
    d, m, q, t = cfg["data"], cfg["model"], cfg["quantizer"], cfg["train"]
    if d["name"] not in DATASETS:
        raise ValueError(f"data.name must be one of {', '.join(DATASETS)}, got {d['name']!r}")
    for key in ("val_fraction", "test_fraction"):
        if not 0.0 < d[key] < 1.0:
            raise ValueError(f"data.{key} must be in (0, 1), got {d[key]}")
    if d["val_fraction"] + d["test_fraction"] >= 1.0:
        raise ValueError(
            f"data.val_fraction + data.test_fraction must be < 1 (some data must be left to "
            f"train on), got {d['val_fraction']} + {d['test_fraction']}"
        )
    if d["name"] == "shapes":
        s = d["shapes"]
        if not 3 <= s["n"] <= SHAPES_TOTAL:
            raise ValueError(
                f"data.shapes.n must be in 3..{SHAPES_TOTAL} (the full factor product), got {s['n']}"
            )
        if s["resolution"] < 4:
            raise ValueError(f"data.shapes.resolution must be >= 4, got {s['resolution']}")
    if d["name"] == "npz" and not d["path"]:
        raise ValueError("data.name=npz needs data.path, an .npz file with an image array")
    if m["codebook_size"] < 2:
        raise ValueError(
            f"model.codebook_size must be >= 2 (one code carries no information), got {m['codebook_size']}"
        )
    if m["code_dim"] < 1:
        raise ValueError(f"model.code_dim must be >= 1, got {m['code_dim']}")
    if m["num_codes"] < 1:
        raise ValueError(f"model.num_codes must be >= 1, got {m['num_codes']}")
    if not m["hidden"] or any(h <= 0 for h in m["hidden"]):
        raise ValueError(f"model.hidden must list positive layer sizes, got {m['hidden']}")
    if not m["channels"] or any(c <= 0 for c in m["channels"]):
        raise ValueError(f"model.channels must list positive channel sizes, got {m['channels']}")
    if m["likelihood"] not in LIKELIHOODS:
        raise ValueError(
            f"model.likelihood must be one of {', '.join(LIKELIHOODS)}, got {m['likelihood']!r}"
        )
    if m["norm"] not in NORMS:
        raise ValueError(f"model.norm must be batch, group, layer or null, got {m['norm']!r}")
    if q["commitment_weight"] < 0 or q["dead_code_threshold"] < 0 or q["kmeans_iters"] < 0:
        raise ValueError(
            "quantizer.commitment_weight, dead_code_threshold and kmeans_iters must be >= 0"
        )
    if not 0.0 <= q["decay"] < 1.0:
        raise ValueError(f"quantizer.decay must be in [0, 1), got {q['decay']}")
    for key in ("epochs", "batch_size", "patience", "checkpoint_every", "log_every"):
        if t[key] < 1:
            raise ValueError(f"train.{key} must be at least 1, got {t[key]}")
    if t["threads"] < 0:
        raise ValueError(f"train.threads must be >= 0 (0: torch's default), got {t['threads']}")
    if t["lr"] <= 0:
        raise ValueError(f"train.lr must be positive, got {t['lr']}")


class Splits(NamedTuple):
    """Train/validation/test inputs, ``(N, 64)`` digits or ``(N, C, R, R)`` images in [0, 1]."""

    train: Tensor
    val: Tensor
    test: Tensor


def _split(x: Tensor, data_cfg: dict[str, Any], *, seed: int, name: str) -> Splits:
    """A seeded random split of ``x`` by the configured fractions; every part non-empty."""
    n = x.shape[0]
    n_test = round(n * data_cfg["test_fraction"])
    n_val = round(n * data_cfg["val_fraction"])
    if min(n_test, n_val, n - n_test - n_val) < 1:
        raise ValueError(
            f"{name}: {n} samples are too few to split into non-empty train/val/test parts with "
            f"val_fraction={data_cfg['val_fraction']} and test_fraction={data_cfg['test_fraction']}"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return Splits(
        train=x[order[n_test + n_val :]],
        val=x[order[n_test : n_test + n_val]],
        test=x[order[:n_test]],
    )


def load_data(data_cfg: dict[str, Any], *, seed: int) -> Splits:
    """The configured data as tensors, checked: non-empty, finite, the expected shape, in [0, 1]."""
    name = data_cfg["name"]
    if name == "digits":
        digits = load_digits_splits(
            val_fraction=data_cfg["val_fraction"],
            test_fraction=data_cfg["test_fraction"],
            seed=seed,
        )
        return Splits(*(part.tensors()[0] for part in digits))
    if name == "shapes":
        s = data_cfg["shapes"]
        images = ShapesDataset(
            n=s["n"], seed=seed, resolution=s["resolution"], antialias=s["antialias"]
        ).images()  # (N, 1, R, R)
        return _split(images, data_cfg, seed=seed, name="shapes")
    where = f"{data_cfg['path']} [{data_cfg['key']!r}]"
    x = NpzDataset(data_cfg["path"], key=data_cfg["key"]).x
    validate_array(x, name=where, expected_ndim=(3, 4))
    if x.dim() == 3:
        x = x.unsqueeze(1)  # (N, R, R) -> (N, 1, R, R)
    if x.shape[2] != x.shape[3]:
        raise ValueError(
            f"{where}: expected square images (N, R, R) or (N, C, R, R), got shape {tuple(x.shape)}"
        )
    if x.min() < 0 or x.max() > 1:
        raise ValueError(
            f"{where}: pixel values must be in [0, 1], got range [{x.min():.3g}, {x.max():.3g}]"
        )
    return _split(x, data_cfg, seed=seed, name=where)


def check_model_fits_data(model_cfg: dict[str, Any], x: Tensor) -> None:
    """Refuse a model that cannot take this data (before anything is built)."""
    if x.dim() == 2:  # vectors: the MLP
        if model_cfg["num_codes"] > x.shape[1]:
            raise ValueError(
                f"model.num_codes={model_cfg['num_codes']} code vectors per sample exceed the "
                f"{x.shape[1]} input values per sample; expected at most {x.shape[1]}"
            )
        return
    side, layers = x.shape[-1], len(model_cfg["channels"])
    if side % 2**layers:
        raise ValueError(
            f"model.channels has {layers} stride-2 layers, so images need a side divisible by "
            f"{2**layers}; got {side}x{side} images (use fewer layers or another resolution)"
        )


def build_model(model_cfg: dict[str, Any], quant_cfg: dict[str, Any], x: Tensor) -> Autoencoder:
    """The VQ-VAE for inputs like ``x``: MLP with several code vectors, or conv with a code map."""
    check_model_fits_data(model_cfg, x)
    K, D = model_cfg["codebook_size"], model_cfg["code_dim"]
    quantizer = {"name": "vq", "dim": D, "codebook_size": K, **quant_cfg}
    if x.dim() == 2:
        M, pixels = model_cfg["num_codes"], x.shape[1]
        encoder = {
            "name": "mlp",
            "in_dim": pixels,
            "hidden": list(model_cfg["hidden"]),
            "out_dim": M * D,
            "out_shape": [M, D],  # (B, M, D): M code vectors per image
        }
        decoder = {
            "name": "mlp",
            "in_dim": M * D,
            "hidden": list(reversed(model_cfg["hidden"])),
            "out_dim": pixels,
        }
        quantizer["feature_dim"] = -1
    else:
        channels, side = x.shape[1], x.shape[-1]
        encoder = {
            "name": "conv2d",
            "in_channels": channels,
            "image_size": side,
            "channels": list(model_cfg["channels"]),
            "out_channels": D,  # (B, D, R / 2^L, R / 2^L): one code per map position
            "norm": model_cfg["norm"],
        }
        decoder = {
            "name": "conv2d",
            "out_channels": channels,
            "image_size": side,
            "channels": list(reversed(model_cfg["channels"])),
            "in_channels": D,
            "norm": model_cfg["norm"],
        }
        quantizer["feature_dim"] = 1
    return Autoencoder.from_config(
        {
            "encoder": encoder,
            "bottleneck": quantizer,
            "decoder": decoder,
            "likelihood": model_cfg["likelihood"],
        }
    )


def reconstruction_loss(model: Autoencoder, x_hat: Tensor, x: Tensor) -> Tensor:
    """Mean over pixels: squared error (Gaussian) or cross-entropy from logits (Bernoulli)."""
    if model.likelihood == "bernoulli":
        return losses.bce_with_logits(x_hat, x, reduction="mean")
    return losses.mse(x_hat, x)


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


def train(cfg: dict[str, Any]) -> tuple[Path | None, dict[str, Any]]:
    """The training loop; returns the run directory (main process) and a summary."""
    validate(cfg)
    data = load_data(cfg["data"], seed=cfg["seed"])
    check_model_fits_data(cfg["model"], data.train)
    ctx = init_distributed(device_preference=cfg["device"])
    seed_everything(cfg["seed"])
    run_dir = Path(cfg["output_dir"])
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml", header="seqae run vqvae")

    t = cfg["train"]
    loader = make_loader(
        TensorDataset(data.train),
        batch_size=t["batch_size"],
        shuffle=True,
        seed=cfg["seed"],
        ctx=ctx,
    )
    x_val = data.val.to(ctx.device)
    model = build_model(cfg["model"], cfg["quantizer"], data.train).to(ctx.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=t["lr"])
    stopper = EarlyStopping(patience=t["patience"], min_delta=t["min_delta"])
    ckpt = CheckpointManager(run_dir / "checkpoints", keep_last=2)
    logger = MetricLogger(run_dir)

    step, start_epoch, train_seconds = 0, 0, 0.0
    if cfg["resume"]:
        resumed = ckpt.load_latest(model=model, optimizer=optimizer, map_location=ctx.device)
        if resumed is None:
            if ctx.is_main:
                print(f"vqvae: resume=true but no checkpoint in {ckpt.directory}; starting fresh")
        else:
            step, start_epoch = resumed.step, resumed.extra["epoch"] + 1
            stopper.load_state_dict(resumed.extra["early_stopping"])
            train_seconds = resumed.extra["train_seconds"]
            if ctx.is_main:
                print(f"vqvae: resumed from {resumed.path.name} (epoch {start_epoch}, step {step})")
    ddp_model = wrap_model(model, ctx)

    epoch = start_epoch - 1
    for epoch in range(start_epoch, t["epochs"]):
        if stopper.should_stop:
            break
        started = time.perf_counter()
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
                {"loss": loss, "rec": rec, "vq": vq}, step=step, last_checkpoint=ckpt.latest_path
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
        train_seconds += time.perf_counter() - started

        val = code_statistics(model, x_val)
        logger.scalars(
            {k: val[k] for k in ("mse", "perplexity", "codes_used")}, step=step, prefix="val/"
        )
        stopper.step(val["mse"])
        if stopper.improved and ctx.is_main:
            model.save_pretrained(run_dir / "model")
        last = epoch == t["epochs"] - 1 or stopper.should_stop
        if (epoch + 1) % t["checkpoint_every"] == 0 or last:
            ckpt.save(
                step,
                model=model,
                optimizer=optimizer,
                extra={
                    "epoch": epoch,
                    "early_stopping": stopper.state_dict(),
                    "train_seconds": train_seconds,
                },
            )
        if ctx.is_main and (epoch % max(1, t["epochs"] // 10) == 0 or last):
            print(
                f"epoch {epoch:4d} step {step:6d}  val MSE {val['mse']:.5f}  perplexity "
                f"{val['perplexity']:6.1f}  codes used {val['codes_used']}/{cfg['model']['codebook_size']}"
            )
    logger.flush()
    summary = {
        "epochs_run": epoch + 1,
        "steps": step,
        "train_seconds": train_seconds,
        "best_val_mse": stopper.best,
        "world_size": ctx.world_size,
    }
    is_main = ctx.is_main
    cleanup()
    return (run_dir if is_main else None), summary


@torch.no_grad()
def evaluate(run_dir: Path, cfg: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """Test metrics of the best model, figures, metrics.json (main process only)."""
    device = torch.device("cuda" if torch.cuda.is_available() and cfg["device"] != "cpu" else "cpu")
    model = Autoencoder.from_pretrained(run_dir / "model", map_location=device).eval()
    data = load_data(cfg["data"], seed=cfg["seed"])
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
    write_metrics_json(run_dir / "metrics.json", metrics)
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
    threads = torch.get_num_threads()
    if cfg["train"]["threads"] > 0:
        # small models on a busy CPU: one intra-op thread avoids OpenMP spin-waiting, which
        # slowed steps by an order of magnitude on a shared 2-core machine
        torch.set_num_threads(cfg["train"]["threads"])
    try:
        run_dir, summary = train(cfg)
        if run_dir is None:  # not the main process
            return None
        metrics = evaluate(run_dir, cfg, summary)
    finally:
        torch.set_num_threads(threads)
    print(
        f"vqvae ({metrics['dataset']}): test MSE {metrics['test_mse']:.5f} (mean image "
        f"{metrics['mean_image_mse']:.5f}) | perplexity {metrics['test_perplexity']:.1f}, "
        f"{metrics['test_codes_used']}/{metrics['codebook_size']} codes used, "
        f"{metrics['test_dead_codes']} dead | {metrics['bits_per_sample']} bits per sample"
    )
    print(f"vqvae: wrote {run_dir}/ (metrics.json, figures/, model/, checkpoints/, tb/)")
    return metrics
