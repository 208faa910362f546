"""Variational autoencoder on scikit-learn's 8x8 digits: seqae's main job.

    seqae run vae_digits                              # full config, a few minutes on a CPU
    seqae run vae_digits --config vae_digits_tiny     # seconds; what the tests run
    torchrun --nproc_per_node=2 -m seqae.cli run vae_digits

Model: encoder 64-256-128 (ReLU) -> Gaussian bottleneck (reparameterisation trick, analytic KL)
-> decoder z-128-256-64, with a Gaussian likelihood whose per-pixel sigma is learned. Data are
uniformly dequantised, x = (v + u) / 17 for pixel levels v in 0..16, so that the density the model
assigns is a bound on the probability of the discrete image (Theis et al. 2016, arXiv 1511.01844)
and the test NLL is a number comparable across models. Training maximises the ELBO with a KL
warm-up (Bowman et al. 2016) and keeps the weights of the best validation epoch.

Writes to ``output_dir``: config.yaml, checkpoints/ (resumable), model/ (best weights as
config.json + model.safetensors), tb/, figures/ and metrics.json.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from seqae.config import ConfigError  # noqa: E402
from seqae.core import Autoencoder  # noqa: E402
from seqae.core.losses import kl_normal_std  # noqa: E402
from seqae.core.schedules import build_schedule  # noqa: E402
from seqae.data.digits import discrete_nll_bound, load_digits_splits  # noqa: E402
from seqae.metrics import importance_sampled_nll  # noqa: E402
from seqae.plotting import show_images  # noqa: E402
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

PIXELS = 64


# ---------------------------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------------------------
def validate(cfg: dict[str, Any]) -> None:
    """Refuse impossible settings before anything is built."""
    m, t = cfg["model"], cfg["train"]
    if not 1 <= m["latent_dim"] <= PIXELS:
        raise ConfigError(
            f"model.latent_dim must be in 1..{PIXELS} (the input has {PIXELS} pixels), got {m['latent_dim']}"
        )
    if not m["hidden"] or any(h <= 0 for h in m["hidden"]):
        raise ConfigError(f"model.hidden must list positive layer sizes, got {m['hidden']}")
    for key in ("epochs", "batch_size"):
        if t[key] < 1:
            raise ConfigError(f"train.{key} must be at least 1, got {t[key]}")
    if t["lr"] <= 0:
        raise ConfigError(f"train.lr must be positive, got {t['lr']}")
    if cfg["eval"]["nll_samples"] < 1:
        raise ConfigError(f"eval.nll_samples must be at least 1, got {cfg['eval']['nll_samples']}")


def build_model(model_cfg: dict[str, Any]) -> Autoencoder:
    """Encoder 64-h1-h2 (ReLU), Gaussian(z), decoder z-h2-h1-64: pythae's digits VAE layout."""
    *enc_hidden, enc_out = model_cfg["hidden"]
    z = model_cfg["latent_dim"]
    return Autoencoder.from_config(
        {
            "encoder": {
                "name": "mlp",
                "in_dim": PIXELS,
                "hidden": enc_hidden,
                "out_dim": enc_out,
                "out_activation": "relu",
            },
            "bottleneck": {"name": "gaussian", "in_dim": enc_out, "latent_dim": z},
            "decoder": {
                "name": "mlp",
                "in_dim": z,
                "hidden": list(reversed(model_cfg["hidden"])),
                "out_dim": PIXELS,
            },
            "likelihood": "gaussian",
            "sigma": model_cfg["sigma"],
            "learn_sigma": model_cfg["learn_sigma"],
            "sigma_shape": [PIXELS] if model_cfg["learn_sigma"] else [],
        }
    )


# ---------------------------------------------------------------------------------------------
# train and evaluate
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def negative_elbo(model: Autoencoder, x: Tensor, *, batch_size: int = 1024) -> dict[str, float]:
    """-ELBO = reconstruction + KL, nats per image, eval mode (one posterior sample)."""
    was_training = model.training
    model.eval()
    rec = kl = 0.0
    for xb in x.split(batch_size):
        mu, logvar = model.bottleneck.posterior(model.encoder(xb))
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        rec += -model.log_likelihood(model.decode(z), xb).sum().item()
        kl += kl_normal_std(mu, logvar, reduction="sum").item()
    model.train(was_training)
    n = x.shape[0]
    return {"loss": (rec + kl) / n, "rec": rec / n, "kl": kl / n}


def train(cfg: dict[str, Any], run: RunSession) -> dict[str, Any]:
    """The training loop; returns a summary of the run."""
    ctx = run.ctx
    data = load_digits_splits(
        val_fraction=cfg["data"]["val_fraction"],
        test_fraction=cfg["data"]["test_fraction"],
        seed=cfg["seed"],
        dequantize=True,
    )
    t = cfg["train"]
    # DigitsDataset has a batched read (get_batch): each batch is one gather, not 64 item reads
    loader = make_loader(
        data.train, batch_size=t["batch_size"], shuffle=True, seed=cfg["seed"], ctx=ctx
    )
    x_val = data.val.tensors()[0].to(ctx.device)

    model = build_model(cfg["model"]).to(ctx.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"])
    beta = build_schedule(t["beta"])
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
        data.train.set_epoch(epoch)  # dequantisation noise keyed to (seed, epoch): resumable
        ddp_model.train()
        for x, _ in progress(loader, desc=f"epoch {epoch}", enabled=ctx.is_main and t["progress"]):
            x = x.to(ctx.device, non_blocking=True)
            with autocast_context(ctx.device):
                out = ddp_model(x)
            rec = model.reconstruction_loss(out.x_hat.float(), x)
            kl = out.loss.float()
            weight = beta(step)
            loss = rec + weight * kl
            check_finite(
                {"loss": loss, "rec": rec, "kl": kl},
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
                    {"loss": loss, "rec": rec, "kl": kl, "beta": weight}, step=step, prefix="train/"
                )

        val = negative_elbo(model, x_val)
        logger.scalars(val, step=step, prefix="val/")
        stopper.step(val["loss"])
        if stopper.improved and ctx.is_main:
            model.save_pretrained(run.dir / "model")
        out_of_time = run.out_of_time()
        last = epoch == t["epochs"] - 1 or stopper.should_stop or out_of_time
        if run.checkpoint_due(epoch + 1) or last:
            run.save(step, model=model, optimizer=optimizer, extra={"epoch": epoch})
        if ctx.is_main and (epoch % max(1, t["epochs"] // 10) == 0 or last):
            print(
                f"epoch {epoch:4d} step {step:6d}  val -ELBO {val['loss']:8.2f} nats "
                f"(rec {val['rec']:8.2f}, kl {val['kl']:6.2f})  beta {beta(step):.2f}"
            )
        if out_of_time:
            if ctx.is_main:
                print(f"vae_digits: train.max_minutes={t['max_minutes']} reached at epoch {epoch}")
            break
    logger.flush()
    return {
        "epochs_run": epoch + 1,
        "steps": step,
        "train_seconds": run.train_seconds,
        "stopped_by_time_budget": run.out_of_time(),
        "best_val_neg_elbo": stopper.best,
        "world_size": ctx.world_size,
        "compiled": bool(t["compile"]),
    }


@torch.no_grad()
def evaluate(run_dir: Path, cfg: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """Test metrics of the best model, figures, metrics.json (main process only)."""
    device = torch.device("cuda" if torch.cuda.is_available() and cfg["device"] != "cpu" else "cpu")
    model = Autoencoder.from_pretrained(run_dir / "model", map_location=device).eval()
    data = load_digits_splits(
        val_fraction=cfg["data"]["val_fraction"],
        test_fraction=cfg["data"]["test_fraction"],
        seed=cfg["seed"],
        dequantize=True,
    )
    x_test, y_test = (t.to(device) for t in data.test.tensors())
    k = cfg["eval"]["nll_samples"]
    nll = (
        importance_sampled_nll(
            model, x_test, num_samples=k, batch_size=cfg["eval"]["batch_size"] * k
        )
        .mean()
        .item()
    )
    neg_elbo = negative_elbo(model, x_test)
    mu, logvar = model.bottleneck.posterior(model.encoder(x_test))
    kl_per_dim = kl_normal_std(mu, logvar, reduction="none").mean(0)
    metrics = {
        "test_mse": torch.mean((model.reconstruct(x_test) - x_test) ** 2).item(),
        "test_nll": nll,
        "test_nll_discrete_bound": discrete_nll_bound(nll),
        "test_bits_per_dim": discrete_nll_bound(nll) / (PIXELS * math.log(2)),
        "test_neg_elbo": neg_elbo["loss"],
        "test_kl": neg_elbo["kl"],
        "nll_samples": k,
        "active_units": int((kl_per_dim > 0.01).sum().item()),
        "latent_dim": cfg["model"]["latent_dim"],
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "n_train": len(data.train),
        "n_test": len(data.test),
        **summary,
    }
    figures = save_figures(model, x_test, y_test, mu, run_dir / "figures", cfg["figures"])
    with MetricLogger(run_dir) as logger:
        for name, fig in figures.items():
            logger.image(f"figures/{name}", fig, step=summary["steps"])
    for fig in figures.values():
        plt.close(fig)
    return metrics


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def save_figures(
    model: Autoencoder, x: Tensor, y: Tensor, mu: Tensor, out_dir: Path, fig_cfg: dict[str, Any]
) -> dict[str, plt.Figure]:
    out_dir.mkdir(parents=True, exist_ok=True)
    figs: dict[str, plt.Figure] = {}
    n = min(16, x.shape[0])

    fig, axes = plt.subplots(2, 1, figsize=(8, 1.6))
    show_images(axes[0], x[:n], ncol=n)
    show_images(axes[1], model.reconstruct(x[:n]), ncol=n)
    axes[0].set_ylabel("test", rotation=0, ha="right")
    axes[1].set_ylabel("recon.", rotation=0, ha="right")
    figs["reconstructions"] = fig

    torch.manual_seed(0)
    fig, ax = plt.subplots(figsize=(4, 4))
    show_images(
        ax, model.sample(fig_cfg["num_samples"]), ncol=int(math.sqrt(fig_cfg["num_samples"]))
    )
    ax.set_title("samples from the prior")
    figs["samples"] = fig

    # Interpolation strips between digits of different classes, like the tutorial's moon phases.
    pairs = [(0, 6), (1, 7), (3, 8), (4, 9)]
    firsts = {int(c): int((y == c).nonzero()[0]) for c in y.unique()}
    pairs = [(a, b) for a, b in pairs if a in firsts and b in firsts] or [(0, 0)]
    idx_a = torch.tensor([firsts.get(a, 0) for a, _ in pairs])
    idx_b = torch.tensor([firsts.get(b, 0) for _, b in pairs])
    steps = fig_cfg["interpolation_steps"]
    fig, axes = plt.subplots(2, 1, figsize=(steps * 0.6, len(pairs) * 1.3))
    for ax, method in zip(axes, ("linear", "slerp"), strict=True):
        path = model.interpolate(x[idx_a], x[idx_b], steps=steps, method=method)  # (steps, P, 64)
        show_images(ax, path.transpose(0, 1).reshape(-1, PIXELS), ncol=steps)
        ax.set_title(f"{method} interpolation in latent space", fontsize=9)
    figs["interpolation"] = fig

    fig, ax = plt.subplots(figsize=(5, 4.5))
    centred = mu - mu.mean(0)
    proj = (
        centred @ torch.linalg.svd(centred, full_matrices=False).Vh[:2].T if mu.shape[1] > 2 else mu
    )
    sc = ax.scatter(proj[:, 0].cpu(), proj[:, 1].cpu(), c=y.cpu(), cmap="tab10", s=8)
    fig.colorbar(sc, ax=ax, label="digit")
    ax.set_title("test posterior means (first two principal axes)")
    figs["latent_space"] = fig

    for name, f in figs.items():
        f.tight_layout()
        f.savefig(out_dir / f"{name}.png", dpi=120)
    return figs


def main(cfg: dict[str, Any]) -> dict[str, Any] | None:
    validate(cfg)
    ctx = init_distributed(device_preference=cfg["device"])
    seed_everything(cfg["seed"])
    # a run may be extended: resume=true train.epochs=N continues it to N epochs
    neutral = (*RESULT_NEUTRAL_KEYS, "train.epochs")
    with RunSession(cfg, recipe="vae_digits", ctx=ctx, neutral=neutral) as run:
        summary = train(cfg, run)
        if not ctx.is_main:
            return None
        metrics = evaluate(run.dir, cfg, summary)
        return run.finish(
            metrics,
            summary=(
                f"test MSE {metrics['test_mse']:.4f} | test NLL {metrics['test_nll']:.2f} nats "
                f"(k={metrics['nll_samples']}; discrete bound "
                f"{metrics['test_nll_discrete_bound']:.2f} nats, "
                f"{metrics['test_bits_per_dim']:.3f} bits/dim) | "
                f"{metrics['active_units']}/{metrics['latent_dim']} active units"
            ),
        )
