"""Unsupervised classification of scikit-learn's 8x8 digits with a one-hot code.

    seqae run onehot_classify                                  # full config, several minutes
    seqae run onehot_classify --config onehot_classify_tiny    # seconds; what the tests run

Model: encoder 64-h1-h2 (ReLU) -> seqae's OneHotBottleneck with K categories (straight-through
Gumbel-softmax, Jang et al. 2017, arXiv 1611.01144; its temperature annealed by an
ExponentialSchedule as in that paper, sec. 4.1) next to a small continuous "style" code, the
categorical-plus-continuous latent of GMVAE (Dilokthanakul et al. 2016, arXiv 1611.02648) and
VaDE (Jiang et al. 2017, arXiv 1611.05148) -> decoder [one-hot, style] -> 64 pixels. An image's
class is its one-hot code in eval mode (``argmax`` of the bottleneck's logits).

A one-hot autoencoder trained on reconstruction alone groups images by pixel distance, like
k-means, and k-means on raw pixels is the baseline to beat here. What makes the categorical code
cluster well is borrowed from the literature (all terms use the bottleneck's categorical
posterior ``q(y|x) = softmax(logits)``):

- neighbour consistency (SCAN, Van Gansbeke et al. 2020, arXiv 2005.12320, eq. 2): an image and
  one of its ``k`` nearest neighbours in pixel space (mined once from the training images,
  without labels) should get the same code: ``-log <q(y|a), q(y|b)>``;
- augmentation invariance (IIC, Ji et al. 2019, arXiv 1807.06653): both images of a pair are
  randomly shifted, rotated and scaled a little (8x8 -> 8x8, bilinear) before encoding;
- a marginal-entropy term ``-H(mean_batch q)`` (SCAN eq. 2; IIC's marginal entropy) that keeps
  every category in use and stops the trivial one-cluster solution;
- the autoencoder's reconstruction through the Gumbel-softmax code (small weight): the decoder
  turns each category into a prototype image.

Several seeds, each with several restarts; among a seed's restarts the one with the lowest
*unsupervised* validation loss is kept (never the test labels). The test split is clustered by
the kept model and by k-means on raw pixels (scikit-learn KMeans, fitted on the training images,
``n_init`` restarts chosen by inertia), and both are scored by Hungarian clustering accuracy.

The model is :class:`seqae.core.classifier.OneHotClassifier`; each (seed, restart) is a part of
the run (:meth:`seqae.training.RunSession.part`), so ``resume=true`` reuses the trained ones.

Writes to ``output_dir``: config.yaml, parts/ (each trained restart: its model folder and its
record), model/ (the first seed's kept model, config.json + model.safetensors: load it with
``seqae.load_pretrained``), tb/, figures/ and metrics.json.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor  # noqa: E402

from seqae.config import ConfigError  # noqa: E402
from seqae.core.classifier import OneHotClassifier  # noqa: E402
from seqae.core.schedules import ExponentialSchedule  # noqa: E402
from seqae.data import load_digits_splits, validate_array  # noqa: E402
from seqae.data.neighbors import nearest_neighbors  # noqa: E402
from seqae.metrics.clustering import (  # noqa: E402
    adjusted_rand_index,
    clustering_accuracy,
    match_clusters,
    matched_confusion_matrix,
    normalized_mutual_info,
)
from seqae.plotting import show_images  # noqa: E402
from seqae.training import (  # noqa: E402
    MetricLogger,
    RunSession,
    check_finite,
    get_device,
    maybe_compile,
    require_single_process,
    seed_everything,
)

PIXELS = 64
SIDE = 8


# ---------------------------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------------------------
def validate(cfg: dict[str, Any]) -> None:
    """Refuse impossible settings before anything is built."""
    m, o, t = cfg["model"], cfg["objective"], cfg["train"]
    if not m["hidden"] or any(h <= 0 for h in m["hidden"]):
        raise ConfigError(f"model.hidden must list positive layer sizes, got {m['hidden']}")
    if m["num_categories"] < 2:
        raise ConfigError(
            f"model.num_categories must be at least 2 (one category cannot classify), got {m['num_categories']}"
        )
    if not 0 <= m["style_dim"] < PIXELS:
        raise ConfigError(
            f"model.style_dim must be in 0..{PIXELS - 1} (the input has {PIXELS} pixels), got {m['style_dim']}"
        )
    if o["neighbors"] < 0:
        raise ConfigError(
            f"objective.neighbors must be >= 0 (0: pairs of augmentations), got {o['neighbors']}"
        )
    for key in ("entropy_weight", "reconstruction_weight"):
        if o[key] < 0:
            raise ConfigError(f"objective.{key} must be >= 0, got {o[key]}")
    a = o["augment"]
    if a["shift"] < 0 or a["rotate"] < 0 or not 0 <= a["scale"] < 1:
        raise ConfigError(
            f"objective.augment needs shift >= 0 pixels, rotate >= 0 degrees and scale in [0, 1), got {a}"
        )
    if not t["seeds"] or len(set(t["seeds"])) != len(t["seeds"]):
        raise ConfigError(f"train.seeds must list distinct seeds, got {t['seeds']}")
    for key in ("restarts", "epochs", "batch_size"):
        if t[key] < 1:
            raise ConfigError(f"train.{key} must be at least 1, got {t[key]}")
    if t["lr"] <= 0:
        raise ConfigError(f"train.lr must be positive, got {t['lr']}")
    if t["threads"] < 0:
        raise ConfigError(f"train.threads must be >= 0 (0: torch's default), got {t['threads']}")
    try:
        ExponentialSchedule(**t["temperature"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"train.temperature: {exc}") from None
    if t["temperature"]["end"] <= 0:
        raise ConfigError("train.temperature.end must be > 0 (a Gumbel-softmax temperature)")
    if cfg["eval"]["kmeans_n_init"] < 1:
        raise ConfigError(f"eval.kmeans_n_init must be >= 1, got {cfg['eval']['kmeans_n_init']}")


def load_data(cfg: dict[str, Any]) -> dict[str, Tensor]:
    """The digits splits as tensors ``x`` in ``[0, 1]`` ``(N, 64)`` and labels ``(N,)``.

    The split is fixed by ``data.split_seed`` so that every training seed sees the same split.
    """
    d = cfg["data"]
    splits = load_digits_splits(
        val_fraction=d["val_fraction"], test_fraction=d["test_fraction"], seed=d["split_seed"]
    )
    data: dict[str, Tensor] = {}
    for name in ("train", "val", "test"):
        x, y = getattr(splits, name).tensors()
        data[f"x_{name}"], data[f"y_{name}"] = x, y
    check_data(
        data, num_categories=cfg["model"]["num_categories"], neighbors=cfg["objective"]["neighbors"]
    )
    return data


def check_data(data: dict[str, Tensor], *, num_categories: int, neighbors: int) -> None:
    """Stop with a clear error when the images cannot be clustered as configured."""
    for name in ("train", "val", "test"):
        validate_array(data[f"x_{name}"], name=f"{name} images", expected_shape=(None, PIXELS))
    n = data["x_train"].shape[0]
    if n < num_categories:
        raise ConfigError(
            f"{n} training images cannot fill model.num_categories={num_categories} categories; "
            "expected at least one image per category"
        )
    if neighbors >= n:
        raise ConfigError(
            f"objective.neighbors={neighbors} needs more than {neighbors} training images, got {n}"
        )


def build_model(model_cfg: dict[str, Any]) -> OneHotClassifier:
    """The classifier described by the config's ``model`` block."""
    return OneHotClassifier(
        in_dim=PIXELS,
        hidden=model_cfg["hidden"],
        num_categories=model_cfg["num_categories"],
        style_dim=model_cfg["style_dim"],
        hard=model_cfg["hard"],
    )


# ---------------------------------------------------------------------------------------------
# objective
# ---------------------------------------------------------------------------------------------
def augment(x: Tensor, aug: dict[str, float], generator: torch.Generator) -> Tensor:
    """Random small affine warps of ``(B, 64)`` 8x8 images (shift in pixels, rotation in
    degrees, relative scale), bilinear with zero padding; the IIC-style perturbations."""
    b = x.shape[0]

    def uniform(*shape: int) -> Tensor:
        return (torch.rand(*shape, generator=generator) * 2 - 1).to(x.device)

    angle = uniform(b) * math.radians(aug["rotate"])
    scale = 1 + uniform(b) * aug["scale"]
    shift = uniform(b, 2) * aug["shift"] * 2 / SIDE  # affine_grid's [-1, 1] spans 8 pixels
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )  # (B, 2, 3)
    img = x.view(b, 1, SIDE, SIDE)
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    return F.grid_sample(img, grid, align_corners=False).view(b, PIXELS)


def clustering_loss(
    q_a: Tensor, q_b: Tensor, *, entropy_weight: float
) -> tuple[Tensor, Tensor, Tensor]:
    """SCAN's objective (arXiv 2005.12320, eq. 2) on pairs of categorical posteriors.

    Returns ``(loss, consistency, marginal_entropy)``: consistency ``-mean log <q_a, q_b>``;
    loss = consistency - entropy_weight * H(mean over the batch of q_a and q_b).
    """
    consistency = -torch.log((q_a * q_b).sum(1).clamp(min=1e-8)).mean()
    marginal = torch.cat([q_a, q_b]).mean(0)
    entropy = -(marginal * marginal.clamp(min=1e-8).log()).sum()
    return consistency - entropy_weight * entropy, consistency, entropy


def objective(
    model: OneHotClassifier,
    x_a: Tensor,
    x_b: Tensor,
    target: Tensor,
    o: dict[str, Any],
) -> dict[str, Tensor]:
    """All named terms for a batch of pairs ``(x_a, x_b)``; ``target`` is the clean ``x_a``."""
    q_a, _, x_hat = model(x_a)
    q_b, _, _ = model(x_b)
    cluster, consistency, entropy = clustering_loss(q_a, q_b, entropy_weight=o["entropy_weight"])
    rec = F.mse_loss(x_hat, target, reduction="none").sum(1).mean()  # per image
    loss = cluster + o["reconstruction_weight"] * rec
    return {"loss": loss, "consistency": consistency, "entropy": entropy, "rec": rec}


@torch.no_grad()
def validation_loss(
    model: OneHotClassifier, x_val: Tensor, x_train: Tensor, o: dict[str, Any]
) -> float:
    """The unsupervised objective on the validation images, without augmentation: each image
    is paired with its nearest training image. Chooses among restarts; uses no labels."""
    was = model.training
    model.eval()
    partner = x_train[nearest_neighbors(x_val, 1, among=x_train)[:, 0]]
    terms = objective(model, x_val, partner, x_val, o)
    model.train(was)
    return float(terms["loss"])


# ---------------------------------------------------------------------------------------------
# train and evaluate
# ---------------------------------------------------------------------------------------------
def train_one(
    cfg: dict[str, Any],
    data: dict[str, Tensor],
    neighbors: Tensor | None,
    *,
    seed: int,
    device: torch.device,
    logger: MetricLogger,
    tag: str,
) -> tuple[OneHotClassifier, dict[str, float]]:
    """Train one model from ``seed``; returns it and its unsupervised validation loss."""
    m, o, t = cfg["model"], cfg["objective"], cfg["train"]
    seed_everything(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_model(m).to(device)
    compiled = maybe_compile(model, t["compile"])  # shares model's parameters
    optimizer = torch.optim.Adam(model.parameters(), lr=t["lr"])
    temperature = ExponentialSchedule(**t["temperature"])
    x_train = data["x_train"].to(device)
    n = x_train.shape[0]
    step, started = 0, time.perf_counter()
    for _ in range(t["epochs"]):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, t["batch_size"]):
            idx = order[i : i + t["batch_size"]]
            if neighbors is not None:  # SCAN pairs: an image and one of its k neighbours
                pick = torch.randint(neighbors.shape[1], (len(idx),), generator=gen)
                partner = neighbors[idx, pick]
            else:  # IIC pairs: two augmentations of the same image
                partner = idx
            x, x_nb = x_train[idx.to(device)], x_train[partner.to(device)]
            model.bottleneck.temperature = temperature(step)
            terms = objective(
                compiled, augment(x, o["augment"], gen), augment(x_nb, o["augment"], gen), x, o
            )
            check_finite(terms, step=step)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            step += 1
            if step % t["log_every"] == 0:
                logger.scalars(
                    {**terms, "temperature": model.bottleneck.temperature},
                    step=step,
                    prefix=f"{tag}/train/",
                )
    val = validation_loss(model, data["x_val"].to(device), x_train, o)
    logger.scalar(f"{tag}/val/loss", val, step=step)
    return model, {"val_loss": val, "steps": step, "train_seconds": time.perf_counter() - started}


def kmeans_baseline(
    data: dict[str, Tensor], *, num_clusters: int, seed: int, n_init: int
) -> Tensor:
    """k-means on raw pixels, fitted on the training images; test images get the nearest centre."""
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=num_clusters, n_init=n_init, random_state=seed)
    km.fit(data["x_train"].numpy())
    return torch.as_tensor(km.predict(data["x_test"].numpy()))


def scores(y: Tensor, pred: Tensor) -> dict[str, float]:
    return {
        "acc": clustering_accuracy(y, pred),
        "nmi": normalized_mutual_info(y, pred),
        "ari": adjusted_rand_index(y, pred),
    }


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def main(cfg: dict[str, Any]) -> dict[str, Any]:
    require_single_process("onehot_classify")
    validate(cfg)
    data = load_data(cfg)  # data-dependent checks, before the run folder is claimed
    threads = torch.get_num_threads()
    if cfg["train"]["threads"]:
        torch.set_num_threads(cfg["train"]["threads"])  # tiny models: one thread is fastest
    try:
        with RunSession(cfg, recipe="onehot_classify") as run:
            metrics, summary = run_seeds(cfg, data, run)
            return run.finish(metrics, summary=summary)
    finally:
        torch.set_num_threads(threads)


def run_seeds(
    cfg: dict[str, Any], data: dict[str, Tensor], run: RunSession
) -> tuple[dict[str, Any], str]:
    """Train every seed's restarts (one part each), keep one per seed, evaluate; write the
    first seed's kept model to ``model/`` and the figures. Returns the metrics and a summary."""
    device = get_device(cfg["device"])
    o, t, m = cfg["objective"], cfg["train"], cfg["model"]
    neighbors = nearest_neighbors(data["x_train"], o["neighbors"]) if o["neighbors"] else None
    logger = MetricLogger(run.dir, enabled=True)

    def restart(tag: str, run_seed: int) -> dict[str, Any]:
        model, info = train_one(
            cfg, data, neighbors, seed=run_seed, device=device, logger=logger, tag=tag
        )
        model.save_pretrained(run.part_dir(tag))
        return info

    per_seed: list[dict[str, Any]] = []
    kept_models: list[OneHotClassifier] = []
    kmeans_codes: list[Tensor] = []
    total_seconds = 0.0
    for seed in t["seeds"]:
        candidates = []
        for r in range(t["restarts"]):
            tag = f"seed{seed}_restart{r}"
            info = run.part(tag, functools.partial(restart, tag, seed * 1000 + r))
            model = OneHotClassifier.from_pretrained(run.part_dir(tag), map_location=device)
            total_seconds += info["train_seconds"]
            candidates.append((info["val_loss"], r, model))
        # keep the restart with the lowest unsupervised validation loss (no labels involved)
        val_loss, chosen, model = min(candidates, key=lambda c: (c[0], c[1]))
        codes = model.classify(data["x_test"].to(device)).cpu()
        km = kmeans_baseline(
            data, num_clusters=m["num_categories"], seed=seed, n_init=cfg["eval"]["kmeans_n_init"]
        )
        mine, base = scores(data["y_test"], codes), scores(data["y_test"], km)
        restart_accs = [
            clustering_accuracy(data["y_test"], c[2].classify(data["x_test"].to(device)).cpu())
            for c in candidates
        ]
        per_seed.append(
            {
                "seed": seed,
                "chosen_restart": chosen,
                "val_losses": [c[0] for c in candidates],
                "restart_test_accs": restart_accs,  # reported only; never used to choose
                # validation accuracy, the only labels used while choosing hyperparameters
                "val_acc": clustering_accuracy(
                    data["y_val"], model.classify(data["x_val"].to(device)).cpu()
                ),
                "onehot": mine,
                "kmeans": base,
                "categories_used": int(codes.unique().numel()),
            }
        )
        kept_models.append(model)
        kmeans_codes.append(km)
        print(
            f"onehot_classify: seed {seed}: kept restart {chosen} (val loss {val_loss:.3f}; "
            f"all {[round(c[0], 3) for c in candidates]}) -> test acc {mine['acc']:.4f} "
            f"(k-means {base['acc']:.4f})"
        )

    onehot_accs = [s["onehot"]["acc"] for s in per_seed]
    kmeans_accs = [s["kmeans"]["acc"] for s in per_seed]
    oh_mean, oh_std = _mean_std(onehot_accs)
    km_mean, km_std = _mean_std(kmeans_accs)
    metrics = {
        "onehot_acc": oh_mean,
        "onehot_acc_std": oh_std,
        "onehot_acc_per_seed": onehot_accs,
        "kmeans_acc": km_mean,
        "kmeans_acc_std": km_std,
        "kmeans_acc_per_seed": kmeans_accs,
        "onehot_beats_kmeans": oh_mean > km_mean,
        "onehot_nmi": statistics.fmean(s["onehot"]["nmi"] for s in per_seed),
        "onehot_ari": statistics.fmean(s["onehot"]["ari"] for s in per_seed),
        "kmeans_nmi": statistics.fmean(s["kmeans"]["nmi"] for s in per_seed),
        "kmeans_ari": statistics.fmean(s["kmeans"]["ari"] for s in per_seed),
        "seeds": per_seed,
        "selection": "per seed, the restart with the lowest unsupervised validation loss",
        "num_categories": m["num_categories"],
        "n_train": int(data["x_train"].shape[0]),
        "n_val": int(data["x_val"].shape[0]),
        "n_test": int(data["x_test"].shape[0]),
        "train_seconds": total_seconds,
    }
    first = kept_models[0].cpu()
    first.save_pretrained(run.dir / "model")
    figures = save_figures(
        first, data, kmeans_codes[0], run.dir / "figures", cfg["figures"], metrics
    )
    for name, fig in figures.items():
        logger.image(f"figures/{name}", fig, step=0)
        plt.close(fig)
    logger.close()
    summary = (
        f"test clustering accuracy {oh_mean:.4f} +- {oh_std:.4f} over {len(onehot_accs)} seeds "
        f"vs k-means {km_mean:.4f} +- {km_std:.4f}"
    )
    return metrics, summary


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def _confusion(ax: plt.Axes, y: Tensor, pred: Tensor, title: str) -> None:
    matrix, classes = matched_confusion_matrix(y, pred)
    shown = matrix[:, :-1] if matrix[:, -1].sum() == 0 else matrix
    ax.imshow(shown, cmap="Blues")
    for (i, j), v in np.ndenumerate(shown):
        if v:
            ax.text(
                j,
                i,
                str(v),
                ha="center",
                va="center",
                fontsize=6,
                color="white" if v > shown.max() / 2 else "black",
            )
    labels = [str(c) for c in classes] + (["none"] if shown.shape[1] > len(classes) else [])
    ax.set_xticks(range(shown.shape[1]), labels)
    ax.set_yticks(range(len(classes)), [str(c) for c in classes])
    ax.set_xlabel("cluster, mapped to a class (Hungarian)")
    ax.set_ylabel("true class")
    ax.set_title(f"{title}: acc {clustering_accuracy(y, pred):.3f}", fontsize=9)


def save_figures(
    model: OneHotClassifier,
    data: dict[str, Tensor],
    kmeans_codes: Tensor,
    out_dir: Path,
    fig_cfg: dict[str, Any],
    metrics: dict[str, Any],
) -> dict[str, plt.Figure]:
    out_dir.mkdir(parents=True, exist_ok=True)
    x, y = data["x_test"], data["y_test"]
    codes = model.classify(x)
    mapped = match_clusters(y, codes).mapping
    k = model.bottleneck.num_categories
    n = fig_cfg["examples_per_cluster"]
    figs: dict[str, plt.Figure] = {}

    # one row per category: the decoded prototype, a gap, then test images with that code
    prototypes = model.prototypes(data["x_train"]).cpu()
    rows = []
    for c in range(k):
        members = x[codes == c][:n]
        blank = torch.full((n + 1 - len(members), PIXELS), float("nan"))
        rows.append(torch.cat([prototypes[c : c + 1], blank[:1], members, blank[1:]]))
    fig, ax = plt.subplots(figsize=(1.5 + (n + 2) * 0.42, 0.6 + k * 0.42))
    show_images(ax, torch.cat(rows), ncol=n + 2, gap_color="#d0d0d0")
    labels = [
        f"code {c} -> {mapped[c]}  (n={int((codes == c).sum())})"
        if c in mapped
        else f"code {c} unmatched  (n={int((codes == c).sum())})"
        for c in range(k)
    ]
    ax.set_yticks([r * 9 + 3.5 for r in range(k)], labels, fontsize=7)
    ax.set_title(
        "decoded code, then test images with that code\n(-> the class Hungarian matching gives it)",
        fontsize=8,
    )
    figs["clusters"] = fig

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    _confusion(axes[0], y, codes, "one-hot code (first seed)")
    _confusion(axes[1], y, kmeans_codes, "k-means on pixels (first seed)")
    figs["confusion"] = fig

    fig, ax = plt.subplots(figsize=(5, 3))
    seeds = [s["seed"] for s in metrics["seeds"]]
    pos = np.arange(len(seeds))
    ax.bar(pos - 0.2, metrics["onehot_acc_per_seed"], 0.4, label="one-hot code")
    ax.bar(pos + 0.2, metrics["kmeans_acc_per_seed"], 0.4, label="k-means")
    ax.set_xticks(pos, [str(s) for s in seeds])
    ax.set_xlabel("seed")
    ax.set_ylabel("test clustering accuracy")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
    figs["seeds"] = fig

    for name, f in figs.items():
        f.tight_layout()
        f.savefig(out_dir / f"{name}.png", dpi=120)
    return figs
