"""A deep nonlinear autoencoder against PCA on scikit-learn's 8x8 digits, code sizes 2..16.

    seqae run ae_vs_pca                               # full config, a few minutes on a CPU
    seqae run ae_vs_pca --config ae_vs_pca_tiny       # seconds; what the tests run

The question of Hinton & Salakhutdinov (2006, "Reducing the dimensionality of data with neural
networks", Science 313:504): at the same code size, how much better does a deep autoencoder
reconstruct held-out data than PCA, the best *linear* code of that size? Both are fitted on the
training split of :func:`seqae.data.load_digits_splits` and scored on its test split, with pixels
scaled as ``x = v / 16`` (no dequantisation: nothing here is a density).

- **PCA**: the top-``k`` right singular vectors of the centred training images (torch SVD), or
  scikit-learn's ``PCA`` (``pca.method``); both give the same subspace. Reconstruction is
  ``mean + (x - mean) V_k^T V_k``, the least-squares optimum among rank-``k`` affine maps on the
  training set (Eckart-Young).
- **Autoencoder**: ``Autoencoder.stacked([64, *hidden, k])``, ReLU hidden layers, a linear code and
  a mirrored decoder whose output goes through a sigmoid. Optionally denoising (Vincent et al.
  2008, "Extracting and composing robust features with denoising autoencoders"): the input is
  corrupted in training only (``model.noise`` / ``model.noise_kind``) and the loss compares with
  the clean image. On these 1259 training images a small Gaussian corruption (std 0.1) regularises
  the deep decoder and lowers the held-out error.

Loss choice: the default is the Bernoulli cross-entropy of the sigmoid output (``model.loss:
bce``), the loss Hinton & Salakhutdinov used for pixel intensities in [0, 1]; it is still
meaningful for grey values (its minimum is at ``x_hat = x``), its gradient does not vanish where
the sigmoid saturates, and it weighs errors near 0 and 1 (the digit's strokes and background)
more than MSE would. ``model.loss: mse`` trains on the evaluation metric directly; in one trial
(plain AE, code size 8) the two gave test MSEs of 0.0113 (BCE) and 0.0108 (MSE). Every model is *evaluated* by test MSE per
pixel of its mean reconstruction, PCA included.

Training keeps the weights of the epoch with the lowest validation MSE (early stopping with
``train.patience``). Each code size is one part of the run (:meth:`RunSession.part`): its
weights are saved in ``parts/code_K/`` (config.json + model.safetensors) and its training
summary in ``parts/code_K.json``, written last. Each code size trains in about a minute, so
resumption is per code size: with ``resume=true`` finished code sizes are loaded instead of
retrained, and ``code_sizes`` may grow.

Writes to ``output_dir``: config.yaml, parts/, tb/, figures/ (mse_vs_code_size.png,
reconstructions.png) and metrics.json.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from seqae.config import ConfigError  # noqa: E402
from seqae.core import Autoencoder  # noqa: E402
from seqae.data.digits import load_digits_splits  # noqa: E402
from seqae.data.files import validate_array  # noqa: E402
from seqae.plotting import show_images  # noqa: E402
from seqae.training import (  # noqa: E402
    RESULT_NEUTRAL_KEYS,
    EarlyStopping,
    MetricLogger,
    RunSession,
    check_finite,
    get_device,
    maybe_compile,
    require_single_process,
    seed_everything,
)

PIXELS = 64
TARGET_CODE_SIZE = 8
TARGET_RATIO = 0.5  # the AE's test MSE at code size 8 should be at most half of PCA's


# ---------------------------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------------------------
def validate(cfg: dict[str, Any]) -> None:
    """Refuse impossible settings before anything is built."""
    sizes = cfg["code_sizes"]
    if not isinstance(sizes, list) or not sizes:
        raise ConfigError(f"code_sizes must be a non-empty list of code sizes, got {sizes!r}")
    for k in sizes:
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k < PIXELS:
            raise ConfigError(
                f"code_sizes: every code size must be an integer in 1..{PIXELS - 1} (smaller than "
                f"the {PIXELS}-pixel input, or there is nothing to compress), got {k!r}"
            )
    if len(set(sizes)) != len(sizes):
        raise ConfigError(f"code_sizes must not repeat a size, got {sizes}")
    m, t = cfg["model"], cfg["train"]
    hidden = m["hidden"]
    if (
        not isinstance(hidden, list)
        or not hidden
        or any(not isinstance(h, int) or h <= 0 for h in hidden)
    ):
        raise ConfigError(
            f"model.hidden must list at least one positive hidden size (a nonlinear autoencoder), got {hidden!r}"
        )
    if m["loss"] not in ("bce", "mse"):
        raise ConfigError(f"model.loss must be 'bce' or 'mse', got {m['loss']!r}")
    if m["noise_kind"] not in ("gaussian", "masking"):
        raise ConfigError(
            f"model.noise_kind must be 'gaussian' or 'masking', got {m['noise_kind']!r}"
        )
    if m["noise"] < 0 or (m["noise_kind"] == "masking" and m["noise"] >= 1):
        raise ConfigError(
            f"model.noise must be >= 0 (and < 1 for masking noise, a drop probability), got {m['noise']}"
        )
    for key in ("epochs", "batch_size", "patience"):
        if t[key] < 1:
            raise ConfigError(f"train.{key} must be at least 1, got {t[key]}")
    if t["lr"] <= 0:
        raise ConfigError(f"train.lr must be positive, got {t['lr']}")
    if t["weight_decay"] < 0:
        raise ConfigError(f"train.weight_decay must be >= 0, got {t['weight_decay']}")
    if cfg["pca"]["method"] not in ("svd", "sklearn"):
        raise ConfigError(f"pca.method must be 'svd' or 'sklearn', got {cfg['pca']['method']!r}")
    if cfg["figures"]["num_examples"] < 1:
        raise ConfigError(
            f"figures.num_examples must be at least 1, got {cfg['figures']['num_examples']}"
        )


def check_images(x: Tensor, *, name: str) -> Tensor:
    """Digits as the models expect them: ``(N, 64)`` floats in ``[0, 1]``, ``N >= 1``, finite."""
    validate_array(x, name=name, expected_shape=(None, PIXELS))
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected float pixel values in [0, 1], got dtype {x.dtype}")
    if x.min() < 0 or x.max() > 1:
        raise ValueError(
            f"{name}: pixel values must lie in [0, 1] (x = v / 16), got range "
            f"[{x.min().item():.3g}, {x.max().item():.3g}]"
        )
    return x


class Splits(NamedTuple):
    train: Tensor  # (N_train, 64)
    val: Tensor
    test: Tensor
    y_test: Tensor  # (N_test,) labels, for picking one example of each digit in the figure


def load_data(cfg: dict[str, Any]) -> Splits:
    """The digits' train/val/test images, ``x = v / 16`` (no dequantisation)."""
    data = load_digits_splits(
        val_fraction=cfg["data"]["val_fraction"],
        test_fraction=cfg["data"]["test_fraction"],
        seed=cfg["seed"],
        dequantize=False,
    )
    x_test, y_test = data.test.tensors()
    splits = Splits(data.train.tensors()[0], data.val.tensors()[0], x_test, y_test)
    for split in ("train", "val", "test"):
        check_images(getattr(splits, split), name=f"{split} images")
    if max(cfg["code_sizes"]) > splits.train.shape[0]:
        raise ConfigError(
            f"PCA with {max(cfg['code_sizes'])} components needs at least that many training "
            f"images; the train split has {splits.train.shape[0]}"
        )
    return splits


# ---------------------------------------------------------------------------------------------
# PCA
# ---------------------------------------------------------------------------------------------
class PCA(NamedTuple):
    """A rank-``k`` PCA code (Pearson 1901; Hotelling 1933)."""

    mean: Tensor  # (64,)
    components: Tensor  # (k, 64), orthonormal rows
    explained_variance_ratio: float

    def encode(self, x: Tensor) -> Tensor:
        return (x - self.mean) @ self.components.T  # (N, k)

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.encode(x) @ self.components + self.mean  # (N, 64)


def fit_pca(x_train: Tensor, *, k: int, method: str = "svd") -> PCA:
    """Top-``k`` principal axes of ``x_train`` by torch SVD or scikit-learn's ``PCA``."""
    check_images(x_train, name="PCA training images")
    if not 1 <= k <= min(x_train.shape):
        raise ValueError(
            f"PCA: k must be in 1..{min(x_train.shape)} for data {tuple(x_train.shape)}, got {k}"
        )
    x = x_train.double()
    mean = x.mean(0)
    if method == "svd":
        _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)  # vh: (64, 64)
        components = vh[:k]
        ratio = (s[:k].pow(2).sum() / s.pow(2).sum()).item()
    elif method == "sklearn":
        from sklearn.decomposition import PCA as SkPCA

        sk = SkPCA(n_components=k, svd_solver="full").fit(x.numpy())
        components = torch.from_numpy(sk.components_)
        ratio = float(sk.explained_variance_ratio_.sum())
    else:
        raise ValueError(f"PCA: method must be 'svd' or 'sklearn', got {method!r}")
    dtype = x_train.dtype
    return PCA(mean.to(dtype), components.to(dtype), ratio)


# ---------------------------------------------------------------------------------------------
# autoencoder: build, train
# ---------------------------------------------------------------------------------------------
def build_model(code_size: int, model_cfg: dict[str, Any]) -> Autoencoder:
    """64-hidden-k encoder (ReLU, linear code), mirrored decoder emitting logits (sigmoid mean)."""
    return Autoencoder.stacked(
        [PIXELS, *model_cfg["hidden"], code_size],
        activation=model_cfg["activation"],
        out_activation=None,
        likelihood="bernoulli",  # decoder gives logits; model.mean / reconstruct apply the sigmoid
        noise=model_cfg["noise"],
        noise_kind=model_cfg["noise_kind"],
    )


@torch.no_grad()
def mse_per_pixel(reconstruct: Any, x: Tensor, *, batch_size: int = 1024) -> float:
    """Mean squared error per pixel between ``x`` and ``reconstruct(x)``."""
    total = 0.0
    for xb in x.split(batch_size):
        total += (reconstruct(xb) - xb).pow(2).sum().item()
    return total / x.numel()


def training_loss(
    model: Autoencoder, x: Tensor, kind: str, *, forward: Any | None = None
) -> Tensor:
    """BCE (nats per image) or squared error per image of the sigmoid output; see the docstring.
    ``forward`` is the model's forward pass to use (the compiled one under ``train.compile``)."""
    out = (forward or model)(x)  # corrupts x in training mode when model.noise > 0
    if kind == "bce":
        return model.reconstruction_loss(out.x_hat, x)
    return (model.mean(out.x_hat) - x).pow(2).sum(1).mean()


def train_autoencoder(
    model: Autoencoder,
    x_train: Tensor,
    x_val: Tensor,
    train_cfg: dict[str, Any],
    *,
    loss_kind: str,
    seed: int,
    logger: MetricLogger,
    tag: str,
) -> dict[str, Any]:
    """Adam on shuffled minibatches; keeps the best-validation weights in ``model`` at the end."""
    t = train_cfg
    optimizer = torch.optim.Adam(model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"])
    stopper = EarlyStopping(patience=t["patience"], min_delta=t["min_delta"])
    order = torch.Generator().manual_seed(seed)
    forward = maybe_compile(model, t["compile"])
    best_state, best_epoch, step, epoch = None, -1, 0, -1
    started = time.perf_counter()
    for epoch in range(t["epochs"]):
        model.train()
        for idx in torch.randperm(x_train.shape[0], generator=order).split(t["batch_size"]):
            x = x_train[idx.to(x_train.device)]
            loss = training_loss(model, x, loss_kind, forward=forward)
            check_finite({"loss": loss}, step=step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step % t["log_every"] == 0:
                logger.scalar(f"{tag}/train_loss", loss, step=step)
        val_mse = mse_per_pixel(model.reconstruct, x_val)
        logger.scalar(f"{tag}/val_mse", val_mse, step=step)
        stopper.step(val_mse)
        if stopper.improved:
            best_state, best_epoch = copy.deepcopy(model.state_dict()), epoch
        if stopper.should_stop:
            break
    assert best_state is not None
    model.load_state_dict(best_state)
    return {
        "best_epoch": best_epoch,
        "epochs_run": epoch + 1,
        "steps": step,
        "best_val_mse": stopper.best,
        "train_seconds": time.perf_counter() - started,
    }


def train(
    cfg: dict[str, Any], run: RunSession, data: Splits, device: torch.device
) -> tuple[dict[int, Autoencoder], dict[int, dict[str, Any]]]:
    """One autoencoder per code size, each a part of the run (reused on resume); returns the
    models (read back from their part folders) and their training summaries."""
    x_train, x_val = data.train.to(device), data.val.to(device)
    models: dict[int, Autoencoder] = {}
    summaries: dict[int, dict[str, Any]] = {}
    with MetricLogger(run.dir) as logger:

        def fit(k: int) -> dict[str, Any]:
            seed_everything(cfg["seed"] + k)  # each code size reproducible on its own
            model = build_model(k, cfg["model"]).to(device)
            summary = train_autoencoder(
                model,
                x_train,
                x_val,
                cfg["train"],
                loss_kind=cfg["model"]["loss"],
                seed=cfg["seed"] + k,
                logger=logger,
                tag=f"code_{k}",
            )
            model.save_pretrained(run.part_dir(f"code_{k}"))
            print(
                f"ae_vs_pca: code size {k:2d}: best val MSE {summary['best_val_mse']:.5f} at epoch "
                f"{summary['best_epoch']} ({summary['epochs_run']} run, {summary['train_seconds']:.0f} s)"
            )
            return summary

        for k in cfg["code_sizes"]:
            summaries[k] = run.part(f"code_{k}", lambda k=k: fit(k))
            models[k] = Autoencoder.from_pretrained(run.part_dir(f"code_{k}"), map_location=device)
            models[k].eval()
    return models, summaries


# ---------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(
    run_dir: Path,
    cfg: dict[str, Any],
    data: Splits,
    models: dict[int, Autoencoder],
    summaries: dict[int, dict[str, Any]],
) -> dict[str, Any]:
    """Test MSE per pixel of AE and PCA at every code size, and the figures."""
    device = next(next(iter(models.values())).parameters()).device
    x_test = data.test.to(device)
    sizes = cfg["code_sizes"]
    pcas = {k: fit_pca(data.train, k=k, method=cfg["pca"]["method"]) for k in sizes}
    ae_mse = {k: mse_per_pixel(models[k].reconstruct, x_test) for k in sizes}
    pca_mse = {k: mse_per_pixel(pcas[k].reconstruct, data.test) for k in sizes}
    ratio = {k: ae_mse[k] / pca_mse[k] for k in sizes}
    at_target = ratio.get(TARGET_CODE_SIZE)
    metrics = {
        "ae_mse": {str(k): ae_mse[k] for k in sizes},
        "pca_mse": {str(k): pca_mse[k] for k in sizes},
        "ratio": {str(k): ratio[k] for k in sizes},
        "ratio_at_8": at_target,
        "target_ratio_at_8": TARGET_RATIO,
        "target_met": None if at_target is None else bool(at_target <= TARGET_RATIO),
        "ae_val_mse": {str(k): summaries[k]["best_val_mse"] for k in sizes},
        "pca_explained_variance_ratio": {str(k): pcas[k].explained_variance_ratio for k in sizes},
        "best_epoch": {str(k): summaries[k]["best_epoch"] for k in sizes},
        "epochs_run": {str(k): summaries[k]["epochs_run"] for k in sizes},
        "train_seconds": sum(s["train_seconds"] for s in summaries.values()),
        "ae_num_parameters": {
            str(k): sum(p.numel() for p in models[k].parameters()) for k in sizes
        },
        "loss": cfg["model"]["loss"],
        "noise": cfg["model"]["noise"],
        "noise_kind": cfg["model"]["noise_kind"],
        "n_train": data.train.shape[0],
        "n_val": data.val.shape[0],
        "n_test": data.test.shape[0],
    }
    figures = save_figures(models, pcas, ae_mse, pca_mse, data, run_dir / "figures", cfg["figures"])
    with MetricLogger(run_dir) as logger:
        for name, fig in figures.items():
            logger.image(f"figures/{name}", fig, step=0)
    return metrics


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def save_figures(
    models: dict[int, Autoencoder],
    pcas: dict[int, PCA],
    ae_mse: dict[int, float],
    pca_mse: dict[int, float],
    data: Splits,
    out_dir: Path,
    fig_cfg: dict[str, Any],
) -> dict[str, plt.Figure]:
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = list(models)
    figs: dict[str, plt.Figure] = {}

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(sizes, [pca_mse[k] for k in sizes], "s--", label="PCA (linear)")
    ax.plot(sizes, [ae_mse[k] for k in sizes], "o-", label="deep autoencoder")
    for k in sizes:
        ax.annotate(
            f"{ae_mse[k] / pca_mse[k]:.2f}x",
            (k, ae_mse[k]),
            textcoords="offset points",
            xytext=(0, -14),
            ha="center",
            fontsize=8,
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.margins(x=0.08, y=0.12)  # room for the ratio labels under the AE points
    ax.set_xticks(sizes, [str(k) for k in sizes])
    ax.set_xlabel("code size")
    ax.set_ylabel("test MSE per pixel")
    ax.set_title("held-out digits: reconstruction error (AE / PCA ratio marked)", fontsize=9)
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    figs["mse_vs_code_size"] = fig

    # one test example of each digit (then more, in order, up to num_examples)
    n = min(fig_cfg["num_examples"], data.test.shape[0])
    firsts = [int((data.y_test == c).nonzero()[0]) for c in data.y_test.unique()]
    rest = [i for i in range(data.test.shape[0]) if i not in firsts]
    idx = torch.tensor((firsts + rest)[:n])
    x = data.test[idx]
    device = next(next(iter(models.values())).parameters()).device
    rows = [("original", x)]
    for k in sizes:
        rows.append((f"AE, k={k}", models[k].reconstruct(x.to(device)).cpu()))
        rows.append((f"PCA, k={k}", pcas[k].reconstruct(x)))
    fig, axes = plt.subplots(len(rows), 1, figsize=(0.55 * n + 1.2, 0.62 * len(rows)))
    for ax, (label, images) in zip(axes, rows, strict=True):
        show_images(ax, images, ncol=images.shape[0])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("test digits and their reconstructions", fontsize=9)
    figs["reconstructions"] = fig

    for name, f in figs.items():
        f.tight_layout()
        f.savefig(out_dir / f"{name}.png", dpi=120)
    return figs


def main(cfg: dict[str, Any]) -> dict[str, Any]:
    require_single_process("ae_vs_pca")
    validate(cfg)
    data = load_data(cfg)
    device = get_device(cfg["device"])
    # a finished code size does not depend on the others: a resumed run may add code sizes
    neutral = (*RESULT_NEUTRAL_KEYS, "code_sizes", "figures")
    with RunSession(cfg, recipe="ae_vs_pca", neutral=neutral) as run:
        models, summaries = train(cfg, run, data, device)
        metrics = evaluate(run.dir, cfg, data, models, summaries)
        plt.close("all")
        for k in cfg["code_sizes"]:
            print(
                f"ae_vs_pca: k={k:2d}  test MSE/pixel  AE {metrics['ae_mse'][str(k)]:.5f}  "
                f"PCA {metrics['pca_mse'][str(k)]:.5f}  ratio {metrics['ratio'][str(k)]:.3f}"
            )
        summary = None
        if metrics["ratio_at_8"] is not None:
            verdict = "met" if metrics["target_met"] else "MISSED"
            summary = (
                f"target AE/PCA <= {TARGET_RATIO} at code size {TARGET_CODE_SIZE}: "
                f"{metrics['ratio_at_8']:.3f} ({verdict})"
            )
        return run.finish(metrics, summary=summary)
