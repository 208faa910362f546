"""Disentangled representations of dSprites-like shapes: beta-VAE, beta-TCVAE and FactorVAE.

    seqae run disentangle                                # one model, a few minutes on a CPU
    seqae run disentangle --config disentangle_sweep     # 3 methods x weights x seeds, ~35 min
    seqae run disentangle --config disentangle_tiny      # seconds; what the tests run

Data: seqae's procedural shapes (:class:`seqae.data.ShapesDataset`, five factors: shape, scale,
orientation, x, y) at 32x32 on a coarse factor grid, split into train and held-out images.
Model: a convolutional encoder, a diagonal-Gaussian code of ``latent_dim`` units, a transposed-
convolution decoder with a Bernoulli likelihood. Each setting of the sweep is a ``(method,
weight)`` pair trained with every seed:

- ``betavae``: ``rec + beta * KL`` (Higgins et al. 2017, "beta-VAE", ICLR); beta = 1 is the
  plain VAE.
- ``tcvae``: ``rec + MI + beta * TC + dimension-wise KL``, the KL split into index-code mutual
  information, total correlation and dimension-wise KL with minibatch stratified sampling
  (Chen et al. 2018, arXiv 1802.04942; :func:`seqae.core.losses.tc_decomposition`).
- ``factorvae``: ``rec + KL + gamma * TC``, the total correlation estimated by a discriminator
  between codes ``z ~ q(z)`` and codes whose dimensions are shuffled independently across the
  batch (samples of ``prod_d q(z_d)``), through the density-ratio trick ``TC ~ E[logit D(z)]``
  (Kim & Mnih 2018, arXiv 1802.05983, Sec. 3 and Alg. 2).

Each trained model is scored with MIG, DCI and the FactorVAE score on fresh samples of the
factors (:mod:`seqae.metrics.disentanglement`), its held-out reconstruction likelihood, and a
latent traversal figure. ``summary.md`` and ``metrics.json`` give the mean and standard
deviation over seeds of every setting.

The budgets are CPU budgets: small models and a few thousand steps, where the papers train
for 300k. Disentanglement scores are accordingly modest; the sweep shows how the methods and
weights compare at that budget and how much the seed matters.

Each (setting, seed) is a part of the run (:meth:`seqae.training.RunSession.part`): its model
is saved in ``parts/<name>/`` (config.json + model.safetensors) and its metrics in
``parts/<name>.json`` once it is scored. With ``resume=true`` the finished models are reused; a
model whose training was interrupted is trained again from the start (one model is a minute or
two of the sweep).

Writes to ``output_dir``: config.yaml, parts/, tb/<name>/, figures/ (traversal_<name>.png,
reconstructions_<name>.png, summary.png), summary.md and metrics.json.
"""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from seqae.config import ConfigError  # noqa: E402
from seqae.core import Autoencoder  # noqa: E402
from seqae.core.losses import (  # noqa: E402
    gan_discriminator_loss,
    kl_normal_std,
    tc_decomposition,
)
from seqae.core.nets import MLP  # noqa: E402
from seqae.data import FACTOR_NAMES, SHAPE_NAMES, ShapesDataset  # noqa: E402
from seqae.files import atomic_write_text  # noqa: E402
from seqae.metrics.disentanglement import evaluate_disentanglement  # noqa: E402
from seqae.plotting import show_images  # noqa: E402
from seqae.training import (  # noqa: E402
    DistributedContext,
    MetricLogger,
    RunSession,
    check_finite,
    init_distributed,
    make_loader,
    progress,
    require_single_process,
    seed_everything,
    set_epoch,
)

METHODS = ("betavae", "tcvae", "factorvae")
WEIGHT_NAMES = {"betavae": "beta", "tcvae": "beta", "factorvae": "gamma"}
SUMMARY_KEYS = (
    "mig",
    "dci_disentanglement",
    "dci_completeness",
    "dci_informativeness",
    "factor_vae_score",
    "test_rec",
    "test_kl",
    "active_units",
)


# ---------------------------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------------------------
def _positive_int(value: Any, name: str, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")


def validate(cfg: dict[str, Any]) -> None:
    """Refuse impossible settings before anything is built or trained."""
    d, m, t, s, e = cfg["data"], cfg["model"], cfg["train"], cfg["sweep"], cfg["eval"]
    _positive_int(d["resolution"], "data.resolution", 8)
    sizes = d["factor_sizes"]
    if not isinstance(sizes, list) or len(sizes) != len(FACTOR_NAMES):
        raise ConfigError(
            f"data.factor_sizes needs {len(FACTOR_NAMES)} entries ({', '.join(FACTOR_NAMES)}), "
            f"got {sizes!r}"
        )
    for name, size in zip(FACTOR_NAMES, sizes, strict=True):
        _positive_int(size, f"data.factor_sizes[{name}]")
    if sizes[0] > len(SHAPE_NAMES):
        raise ConfigError(f"data.factor_sizes: at most {len(SHAPE_NAMES)} shapes, got {sizes[0]}")
    if sum(size > 1 for size in sizes) < 2:
        raise ConfigError(
            f"data.factor_sizes {sizes} varies fewer than 2 factors; disentanglement needs at "
            "least 2 factors with more than one value"
        )
    if not 0.0 < d["test_fraction"] < 1.0:
        raise ConfigError(f"data.test_fraction must be in (0, 1), got {d['test_fraction']}")
    total = math.prod(sizes)
    n_test = int(round(total * d["test_fraction"]))
    if n_test < 1 or total - n_test < t["batch_size"]:
        raise ConfigError(
            f"the factor grid {sizes} has {total} images: {total - n_test} for training and "
            f"{n_test} held out; expected at least one held-out image and one training batch "
            f"({t['batch_size']})"
        )

    channels = m["channels"]
    if not channels or any(not isinstance(c, int) or c < 1 for c in channels):
        raise ConfigError(f"model.channels must list positive channel counts, got {channels!r}")
    if d["resolution"] % 2 ** len(channels):
        raise ConfigError(
            f"data.resolution {d['resolution']} must be divisible by 2^{len(channels)} = "
            f"{2 ** len(channels)} (each of the {len(channels)} conv layers halves it)"
        )
    pixels = d["resolution"] ** 2
    _positive_int(m["latent_dim"], "model.latent_dim", 2)
    if m["latent_dim"] > pixels:
        raise ConfigError(
            f"model.latent_dim must be in 2..{pixels} (the image has {pixels} pixels), got "
            f"{m['latent_dim']}"
        )
    _positive_int(m["disc_hidden"], "model.disc_hidden")
    _positive_int(m["disc_layers"], "model.disc_layers")

    _positive_int(t["epochs"], "train.epochs")
    _positive_int(t["batch_size"], "train.batch_size", 2)  # TC estimators need pairs
    for key in ("lr", "disc_lr"):
        if t[key] <= 0:
            raise ConfigError(f"train.{key} must be positive, got {t[key]}")
    _positive_int(t["log_every"], "train.log_every")

    settings, seeds = s["settings"], s["seeds"]
    if not isinstance(settings, list) or not settings:
        raise ConfigError("sweep.settings must list at least one {method: ..., weight: ...}")
    seen = set()
    for i, item in enumerate(settings):
        if not isinstance(item, dict) or set(item) != {"method", "weight"}:
            raise ConfigError(
                f"sweep.settings[{i}] = {item!r}; expected a mapping with keys method and weight"
            )
        if item["method"] not in METHODS:
            raise ConfigError(
                f"sweep.settings[{i}]: unknown method {item['method']!r}; expected one of "
                f"{', '.join(METHODS)}"
            )
        weight = item["weight"]
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise ConfigError(f"sweep.settings[{i}]: weight must be a number >= 0, got {weight!r}")
        key = (item["method"], float(weight))
        if key in seen:
            raise ConfigError(f"sweep.settings lists {item['method']} weight {weight} twice")
        seen.add(key)
    if not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"sweep.seeds must list distinct integer seeds, got {seeds!r}")
    for seed in seeds:
        _positive_int(seed, "each sweep seed", 0)

    for key in ("num_train", "num_test", "num_bins", "factor_vae_batch"):
        _positive_int(e[key], f"eval.{key}", 2)
    for key in ("factor_vae_train", "factor_vae_eval", "dci_estimators", "batch_size"):
        _positive_int(e[key], f"eval.{key}")
    if e["dci_model"] not in ("gbt", "random_forest", "lasso"):
        raise ConfigError(
            f"eval.dci_model must be gbt, random_forest or lasso, got {e['dci_model']!r}"
        )
    _positive_int(cfg["figures"]["traversal_steps"], "figures.traversal_steps", 2)
    if cfg["figures"]["traversal_range"] <= 0:
        raise ConfigError(
            f"figures.traversal_range must be positive, got {cfg['figures']['traversal_range']}"
        )
    _positive_int(cfg["threads"], "threads", 0)


def build_model(model_cfg: dict[str, Any], resolution: int) -> Autoencoder:
    """Conv encoder (stride-2 layers) -> Gaussian code -> transposed-conv decoder, Bernoulli."""
    channels, z = list(model_cfg["channels"]), model_cfg["latent_dim"]
    return Autoencoder.from_config(
        {
            "encoder": {
                "name": "conv2d",
                "in_channels": 1,
                "image_size": resolution,
                "channels": channels,
                "out_dim": 2 * z,  # (mu, logvar)
                "norm": None,
            },
            "bottleneck": {"name": "gaussian", "latent_dim": z},
            "decoder": {
                "name": "conv2d",
                "out_channels": 1,
                "image_size": resolution,
                "channels": channels[::-1],
                "in_dim": z,
                "norm": None,
            },
            "likelihood": "bernoulli",
        }
    )


def build_discriminator(model_cfg: dict[str, Any]) -> MLP:
    """FactorVAE's discriminator: an MLP z -> logit that z came from q(z), not prod_d q(z_d)
    (Kim & Mnih 2018 use 6 layers of 1000 units with leaky ReLUs; this one is smaller)."""
    return MLP(
        in_dim=model_cfg["latent_dim"],
        out_dim=1,
        hidden=[model_cfg["disc_hidden"]] * model_cfg["disc_layers"],
        activation="leaky_relu",
    )


def load_data(cfg: dict[str, Any]) -> tuple[ShapesDataset, ShapesDataset, ShapesDataset]:
    """Train and held-out images of the factor grid (split by ``seed``), and the full grid
    (lazy; the metrics sample its factors)."""
    d = cfg["data"]
    grid = ShapesDataset(resolution=d["resolution"], factor_sizes=d["factor_sizes"])
    order = np.random.default_rng(cfg["seed"]).permutation(len(grid))
    n_test = int(round(len(grid) * d["test_fraction"]))
    common = {"resolution": d["resolution"], "factor_sizes": d["factor_sizes"]}
    train = ShapesDataset(indices=np.sort(order[n_test:]), **common)
    test = ShapesDataset(indices=np.sort(order[:n_test]), **common)
    return train, test, grid


def run_name(setting: dict[str, Any], seed: int) -> str:
    return f"{setting['method']}_{WEIGHT_NAMES[setting['method']]}{setting['weight']:g}_seed{seed}"


def setting_name(setting: dict[str, Any]) -> str:
    return f"{setting['method']} {WEIGHT_NAMES[setting['method']]}={setting['weight']:g}"


# ---------------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------------
def permute_dims(z: Tensor) -> Tensor:
    """Shuffle each dimension independently across the batch: samples of ``prod_d q(z_d)``
    (Kim & Mnih 2018, arXiv 1802.05983, Alg. 1)."""
    order = torch.argsort(torch.rand(z.shape, device=z.device), dim=0)  # (B, D)
    return z.gather(0, order)


def vae_terms(
    model: Autoencoder,
    x: Tensor,
    *,
    method: str,
    weight: float,
    dataset_size: int,
    disc: nn.Module | None,
) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """The autoencoder's loss for one batch: ``(loss, named terms, sampled z)``.

    The forward pass is spelled out (not ``model(x)``) because the losses need the posterior
    parameters with their gradients; the bottleneck's ``info`` holds detached copies.
    """
    mu, logvar = model.bottleneck.posterior(model.encoder(x))  # (B, D) each
    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # reparameterisation trick
    rec = model.reconstruction_loss(model.decode(z), x)  # Bernoulli NLL, nats per image
    kl = kl_normal_std(mu, logvar)  # analytic, nats per image
    terms = {"rec": rec, "kl": kl}
    if method == "betavae":
        loss = rec + weight * kl
    elif method == "tcvae":
        parts = tc_decomposition(z, mu, logvar, dataset_size=dataset_size, estimator="mss")
        terms.update(mi=parts.mutual_info, tc=parts.total_correlation, dim_kl=parts.dimension_kl)
        loss = rec + parts.mutual_info + weight * parts.total_correlation + parts.dimension_kl
    else:
        assert disc is not None
        tc = disc(z).mean()  # density-ratio estimate: log D / (1 - D) = logit
        terms["tc"] = tc
        loss = rec + kl + weight * tc
    return loss, terms, z


# ---------------------------------------------------------------------------------------------
# train one model
# ---------------------------------------------------------------------------------------------
def train_one(
    cfg: dict[str, Any],
    setting: dict[str, Any],
    seed: int,
    train_set: ShapesDataset,
    ctx: DistributedContext,
    *,
    log_dir: Path,
) -> tuple[Autoencoder, dict[str, Any]]:
    """Train one (method, weight, seed) from scratch; TensorBoard scalars go to
    ``log_dir/tb/<name>``. Returns the model and a summary of its training."""
    name = run_name(setting, seed)
    method, weight = setting["method"], float(setting["weight"])
    t = cfg["train"]
    seed_everything(seed)
    model = build_model(cfg["model"], cfg["data"]["resolution"]).to(ctx.device)
    disc = build_discriminator(cfg["model"]).to(ctx.device) if method == "factorvae" else None
    optimizer = torch.optim.Adam(model.parameters(), lr=t["lr"])
    disc_optimizer = (
        torch.optim.Adam(disc.parameters(), lr=t["disc_lr"], betas=(0.5, 0.9))
        if disc is not None
        else None
    )
    # train.compile: the loss's forward passes (encoder, decoder, discriminator) as one graph
    loss_terms = torch.compile(vae_terms) if t["compile"] else vae_terms
    loader = make_loader(train_set, batch_size=t["batch_size"], shuffle=True, seed=seed, ctx=ctx)
    logger = MetricLogger(log_dir, subdir=f"tb/{name}")

    step, train_seconds = 0, 0.0
    model.train()
    terms: dict[str, Tensor] = {}
    for epoch in range(t["epochs"]):
        started = time.perf_counter()
        set_epoch(loader, epoch)
        for x, _ in progress(loader, desc=f"{name} epoch {epoch}", enabled=t["progress"]):
            x = x.to(ctx.device, non_blocking=True)
            loss, terms, z = loss_terms(
                model, x, method=method, weight=weight, dataset_size=len(train_set), disc=disc
            )
            check_finite({"loss": loss, **terms}, step=step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if disc is not None and disc_optimizer is not None:
                # The discriminator tells q(z) (label 1) from prod_d q(z_d) (label 0).
                z = z.detach()
                disc_loss = gan_discriminator_loss(disc(z), disc(permute_dims(z)))
                disc_optimizer.zero_grad(set_to_none=True)
                disc_loss.backward()
                disc_optimizer.step()
                terms["disc_loss"] = disc_loss.detach()
            step += 1
            if step % t["log_every"] == 0:
                logger.scalars({"loss": loss, **terms}, step=step, prefix="train/")
        train_seconds += time.perf_counter() - started
        shown = "  ".join(f"{k} {float(v.detach()):.2f}" for k, v in terms.items())
        print(f"disentangle: {name} epoch {epoch} step {step}  {shown}")
    logger.close()
    return model, {"steps": step, "epochs": t["epochs"], "train_seconds": train_seconds}


# ---------------------------------------------------------------------------------------------
# evaluate one model
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def held_out_elbo(model: Autoencoder, x: Tensor, *, batch_size: int) -> dict[str, Any]:
    """Reconstruction NLL (one posterior sample), analytic KL and per-unit KL, nats per image;
    and the active units: posterior means that vary over the data, ``Var_x E[z_d|x] > 0.01``
    (Burda et al. 2016, arXiv 1509.00519, Sec. 5.2)."""
    rec = kl = 0.0
    kl_per_dim = torch.zeros(model.bottleneck.latent_dim)
    means = []
    for xb in x.split(batch_size):
        mu, logvar = model.bottleneck.posterior(model.encoder(xb))
        means.append(mu.cpu())
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        rec += -model.log_likelihood(model.decode(z), xb).sum().item()
        kl_elem = kl_normal_std(mu, logvar, reduction="none")
        kl += kl_elem.sum().item()
        kl_per_dim += kl_elem.sum(0).cpu()
    n = x.shape[0]
    variance = torch.cat(means).var(dim=0)  # (D,) Var_x E[z_d | x]
    return {
        "rec": rec / n,
        "kl": kl / n,
        "kl_per_dim": (kl_per_dim / n).tolist(),
        "mean_variance_per_dim": variance.tolist(),
        "active_units": int((variance > 0.01).sum()),
    }


def evaluate_one(
    cfg: dict[str, Any],
    setting: dict[str, Any],
    seed: int,
    test_set: ShapesDataset,
    grid: ShapesDataset,
    device: torch.device,
    summary: dict[str, Any],
    *,
    model_dir: Path,
    figures_dir: Path,
) -> dict[str, Any]:
    """Disentanglement metrics and held-out ELBO of the model saved in ``model_dir``; its
    figures go to ``figures_dir``."""
    name = run_name(setting, seed)
    model = Autoencoder.from_pretrained(model_dir, map_location=device).eval()
    e = cfg["eval"]
    torch.manual_seed(cfg["seed"])
    x_test = test_set.images().to(device)
    elbo = held_out_elbo(model, x_test, batch_size=e["batch_size"])

    def encode(images: Tensor) -> Tensor:
        return model.bottleneck.posterior(model.encoder(images.to(device)))[0]

    started = time.perf_counter()
    scores = evaluate_disentanglement(
        encode,
        grid,
        num_train=e["num_train"],
        num_test=e["num_test"],
        num_bins=e["num_bins"],
        dci_model=e["dci_model"],
        dci_options={"n_estimators": e["dci_estimators"]} if e["dci_model"] != "lasso" else None,
        factor_vae_train=e["factor_vae_train"],
        factor_vae_eval=e["factor_vae_eval"],
        factor_vae_batch=e["factor_vae_batch"],
        rng=cfg["seed"],  # the same factor samples for every model
    )
    kl_per_dim = elbo["kl_per_dim"]
    metrics = {
        "method": setting["method"],
        "weight": float(setting["weight"]),
        "seed": seed,
        **{k: v for k, v in scores.items() if not isinstance(v, list)},
        "test_rec": elbo["rec"],
        "test_kl": elbo["kl"],
        "test_neg_elbo": elbo["rec"] + elbo["kl"],
        "active_units": elbo["active_units"],
        "kl_per_dim": kl_per_dim,
        "mean_variance_per_dim": elbo["mean_variance_per_dim"],
        "mig_per_factor": dict(zip(FACTOR_NAMES, scores["mig_per_factor"], strict=True)),
        "mutual_info": scores["mutual_info"],
        "dci_importance": scores["dci_importance"],
        "metric_seconds": time.perf_counter() - started,
        **summary,
    }
    figures = run_figures(model, x_test, metrics, name, cfg["figures"])
    figures_dir.mkdir(parents=True, exist_ok=True)
    for key, fig in figures.items():
        fig.savefig(figures_dir / f"{key}_{name}.png", dpi=110)
        plt.close(fig)
    return metrics


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def traversal(
    model: Autoencoder, x: Tensor, *, steps: int, k: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Decode one image's code with each latent swept over ``mean +- k std`` (mean and std of
    the posterior means over ``x``), the others held: ``(D, steps, 1, R, R)``, and the per-unit
    mean and std."""
    mu = model.bottleneck.posterior(model.encoder(x))[0]  # (N, D)
    centre, spread = mu.mean(0), mu.std(0)
    base = mu[0]
    offsets = torch.linspace(-k, k, steps, device=mu.device)  # (S,)
    d = mu.shape[1]
    codes = base.repeat(d, steps, 1)  # (D, S, D)
    for i in range(d):
        codes[i, :, i] = centre[i] + offsets * spread[i]
    images = model.mean(model.decode(codes.view(d * steps, d)))
    return images.view(d, steps, *images.shape[1:]), centre, spread


def run_figures(
    model: Autoencoder, x: Tensor, metrics: dict[str, Any], name: str, fig_cfg: dict[str, Any]
) -> dict[str, plt.Figure]:
    """Latent traversal (rows sorted by KL, labelled with the factor each unit informs most)
    and reconstructions."""
    figs: dict[str, plt.Figure] = {}
    images, _, _ = traversal(
        model, x[:512], steps=fig_cfg["traversal_steps"], k=fig_cfg["traversal_range"]
    )
    kl = np.asarray(metrics["kl_per_dim"])
    active = np.asarray(metrics["mean_variance_per_dim"]) > 0.01
    info = np.asarray(metrics["mutual_info"])  # (D, K) nats
    order = np.argsort(-kl)
    d, steps = images.shape[:2]
    fig, axes = plt.subplots(d, 1, figsize=(steps * 0.55 + 1.6, d * 0.62 + 0.5))
    axes = np.atleast_1d(axes)
    for ax, i in zip(axes, order, strict=True):
        show_images(ax, images[i], ncol=steps, cmap="gray")
        best = int(np.argmax(info[i]))
        # the factor this unit has most mutual information with (nats), for active units
        told = f"{FACTOR_NAMES[best]} ({info[i, best]:.2f})" if active[i] else "inactive"
        label = f"z{i}  KL {kl[i]:.2f}\n{told}"
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    axes[0].set_title(
        f"{name}: each row sweeps one latent over mean +- {fig_cfg['traversal_range']:g} std\n"
        f"MIG {metrics['mig']:.2f}  DCI-D {metrics['dci_disentanglement']:.2f}  "
        f"FactorVAE {metrics['factor_vae_score']:.2f}",
        fontsize=8,
    )
    fig.tight_layout()
    figs["traversal"] = fig

    n = min(12, x.shape[0])
    fig, axes = plt.subplots(2, 1, figsize=(n * 0.6 + 1.0, 1.6))
    show_images(axes[0], x[:n], ncol=n, cmap="gray")
    show_images(axes[1], model.reconstruct(x[:n]), ncol=n, cmap="gray")
    axes[0].set_ylabel("held out", rotation=0, ha="right", fontsize=8)
    axes[1].set_ylabel("recon.", rotation=0, ha="right", fontsize=8)
    fig.tight_layout()
    figs["reconstructions"] = fig
    return figs


def summary_figure(summary: dict[str, Any], runs: dict[str, dict[str, Any]]) -> plt.Figure:
    """One panel per metric: each setting's seeds as dots and their mean as a bar."""
    keys = ("mig", "dci_disentanglement", "factor_vae_score", "test_rec")
    labels = list(summary)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 0.45 * len(labels) + 1.6))
    for ax, key in zip(axes, keys, strict=True):
        means = [summary[s][key]["mean"] for s in labels]
        ax.barh(range(len(labels)), means, color="#9ecae1")
        for row, s in enumerate(labels):
            values = summary[s][key]["values"]
            ax.plot(values, [row] * len(values), "o", color="#08519c", ms=4)
        ax.set_yticks(range(len(labels)), labels if ax is axes[0] else [""] * len(labels))
        ax.invert_yaxis()
        ax.set_title(key if key != "test_rec" else "held-out rec. (nats, lower is better)")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------------------------
def summarise(
    settings: list[dict[str, Any]], seeds: list[int], runs: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Mean, standard deviation (ddof=1; 0 for one seed) and values over seeds per setting."""
    summary: dict[str, Any] = {}
    for setting in settings:
        rows = [runs[run_name(setting, seed)] for seed in seeds]
        entry: dict[str, Any] = {"method": setting["method"], "weight": float(setting["weight"])}
        for key in SUMMARY_KEYS:
            values = np.array([float(r[key]) for r in rows])
            entry[key] = {
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                "values": values.tolist(),
            }
        summary[setting_name(setting)] = entry
    return summary


def summary_markdown(cfg: dict[str, Any], summary: dict[str, Any], total_seconds: float) -> str:
    seeds = cfg["sweep"]["seeds"]
    t, d = cfg["train"], cfg["data"]
    head = (
        "| setting | MIG | DCI disent. | DCI compl. | DCI inform. | FactorVAE score "
        "| held-out rec. (nats) | KL (nats) | active units |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for name, entry in summary.items():
        cells = [
            f"{entry[k]['mean']:.3f} ± {entry[k]['std']:.3f}"
            if k not in ("test_rec", "test_kl", "active_units")
            else f"{entry[k]['mean']:.1f} ± {entry[k]['std']:.1f}"
            for k in SUMMARY_KEYS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    best = {
        key: max(summary, key=lambda s, key=key: summary[s][key]["mean"])
        for key in ("mig", "dci_disentanglement", "factor_vae_score")
    }
    e = cfg["eval"]
    return (
        "# Disentanglement sweep\n\n"
        f"Shapes at {d['resolution']}x{d['resolution']}, factor grid {d['factor_sizes']} "
        f"({', '.join(FACTOR_NAMES)}); {t['epochs']} epoch(s) of batch {t['batch_size']} per "
        f"model, latent_dim {cfg['model']['latent_dim']}. Mean ± standard deviation over "
        f"{len(seeds)} seed(s) {seeds}. Metrics on fresh factor samples: MIG and DCI "
        f"({e['dci_model']}, {e['dci_estimators']} estimators) from {e['num_train']} train / "
        f"{e['num_test']} test codes, FactorVAE score from {e['factor_vae_train']} / "
        f"{e['factor_vae_eval']} votes of {e['factor_vae_batch']} images. Held-out "
        "reconstruction: Bernoulli NLL per image, one posterior sample.\n\n"
        + head
        + "\n".join(lines)
        + "\n\n"
        + "Highest mean: "
        + "; ".join(f"{k} - {v}" for k, v in best.items())
        + f".\n\nTotal time {total_seconds / 60:.1f} min. CPU budgets are small (the papers "
        "train for 300k steps), so expect modest scores; compare settings against the seed "
        "spread before reading much into a difference.\n"
    )


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------
def main(cfg: dict[str, Any]) -> dict[str, Any]:
    validate(cfg)
    require_single_process("disentangle")
    ctx = init_distributed(device_preference=cfg["device"])
    threads_before = torch.get_num_threads()
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    try:
        with RunSession(cfg, recipe="disentangle", ctx=ctx) as run:
            return sweep(cfg, ctx, run)
    finally:
        torch.set_num_threads(threads_before)


def sweep(cfg: dict[str, Any], ctx: DistributedContext, run: RunSession) -> dict[str, Any]:
    """Train and score every (setting, seed), one part of the run each; summarise."""
    train_set, test_set, grid = load_data(cfg)
    settings, seeds = cfg["sweep"]["settings"], cfg["sweep"]["seeds"]
    print(
        f"disentangle: {len(settings)} setting(s) x {len(seeds)} seed(s); "
        f"{len(train_set)} training / {len(test_set)} held-out images"
    )

    def member(setting: dict[str, Any], seed: int) -> dict[str, Any]:
        name = run_name(setting, seed)
        model, summary = train_one(cfg, setting, seed, train_set, ctx, log_dir=run.dir)
        model.save_pretrained(run.part_dir(name))
        return evaluate_one(
            cfg,
            setting,
            seed,
            test_set,
            grid,
            ctx.device,
            summary,
            model_dir=run.part_dir(name),
            figures_dir=run.dir / "figures",
        )

    runs: dict[str, dict[str, Any]] = {}
    for setting in settings:
        for seed in seeds:
            name = run_name(setting, seed)
            runs[name] = r = run.part(name, functools.partial(member, setting, seed))
            print(
                f"disentangle: {name}  MIG {r['mig']:.3f}  DCI-D {r['dci_disentanglement']:.3f}  "
                f"FactorVAE {r['factor_vae_score']:.3f}  rec {r['test_rec']:.1f}  "
                f"KL {r['test_kl']:.1f}  ({r['train_seconds']:.0f}s train, "
                f"{r['metric_seconds']:.0f}s metrics)"
            )

    summary = summarise(settings, seeds, runs)
    # every model's training and metrics, over all the sessions of the run
    total_seconds = sum(r["train_seconds"] + r["metric_seconds"] for r in runs.values())
    figures = run.dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    fig = summary_figure(summary, runs)
    fig.savefig(figures / "summary.png", dpi=110)
    with MetricLogger(run.dir) as logger:
        logger.image("figures/summary", fig, step=0)
    plt.close(fig)
    table = summary_markdown(cfg, summary, total_seconds)
    atomic_write_text(run.dir / "summary.md", table)
    print(table)
    metrics = {
        "summary": summary,
        "runs": {
            name: {k: v for k, v in r.items() if k not in ("mutual_info", "dci_importance")}
            for name, r in runs.items()
        },
        "settings": [setting_name(s) for s in settings],
        "seeds": seeds,
        "total_seconds": total_seconds,
    }
    best = max(summary, key=lambda s: summary[s]["mig"]["mean"])
    return run.finish(
        metrics,
        summary=f"{len(runs)} model(s); highest mean MIG {summary[best]['mig']['mean']:.3f} "
        f"({best}); table in summary.md",
    )
