"""Greedy layer-wise autoencoder pretraining of a deep MLP classifier, with few labels.

    seqae run pretrain                                # full config, a few minutes on a CPU
    seqae run pretrain --config pretrain_tiny         # seconds; what the tests run

The experiment of Hinton & Salakhutdinov (2006, "Reducing the dimensionality of data with
neural networks"), Bengio et al. (2007, "Greedy layer-wise training of deep networks") and
Vincent et al. (2010, "Stacked denoising autoencoders", JMLR 11:3371), on scikit-learn's digits:

1. **Unsupervised pretraining** on *all* training images, labels unused. Hidden layer ``i`` of the
   classifier, ``MLP.layers[i]`` (affine map + activation), is trained as the encoder of a
   one-hidden-layer autoencoder whose input is the previous layer's codes of the training
   images; its decoder (one affine map) is thrown away and the encoder kept as initialisation.
   With ``pretrain.noise > 0`` each autoencoder is denoising (Vincent et al. 2010): its input is
   corrupted in training (masking noise by default: each value zeroed with probability
   ``noise``), its loss compares with the clean input. The first layer sees pixels in [0, 1]
   and uses a Bernoulli likelihood (cross-entropy of a sigmoid output); deeper layers see ReLU
   codes, which are unbounded, and use a Gaussian one (squared error of a linear output);
   with ``model.activation: sigmoid`` every layer's input is in [0, 1] and every layer uses the
   Bernoulli likelihood, as in the 2007-2010 papers. Pretraining runs a fixed number of epochs
   per layer: there are no labels to stop on, and the reconstruction error of a layer is not
   what the classifier needs.
2. **Supervised fine-tuning** of the whole network (pretrained hidden layers + a freshly
   initialised output layer) on ``labels_per_class`` labelled images per class, sampled per seed
   from the training split; early stopping on the cross-entropy of a small labelled validation
   set (``val_per_class`` images per class, sampled per seed from the validation split) keeps the
   best epoch's weights. Cross-entropy rather than accuracy: on 100 validation images accuracy
   moves in steps of 1% and ties often, which makes the stopping epoch arbitrary.
3. **Baseline**: the same network from the same random initialisation (same seed, so the output
   layer is identical too), fine-tuned with the same labelled and validation examples, the same
   minibatch order, optimiser, epoch budget and early-stopping rule.

Each seed changes the labelled subsets, the initialisation, the pretraining noise and the
minibatch order; the metrics report the mean, the sample standard deviation and every seed's
test accuracy per (labels_per_class, init), and the paired gain (pretrained minus random, per
seed). Everything is scored on the full test split of :func:`seqae.data.load_digits_splits`.

Each seed is a part of the run (:meth:`seqae.training.RunSession.part`): its results are stored
in ``parts/seed_S.json`` as it finishes, and ``resume=true`` reads finished seeds back instead of
running them again (``resume=true num_seeds=N`` adds seeds to a finished run).

Writes to ``output_dir``: config.yaml, parts/, tb/, figures/accuracy.png, metrics.json.
"""

from __future__ import annotations

import copy
import functools
import statistics
import time
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor  # noqa: E402

from seqae.config import ConfigError  # noqa: E402
from seqae.core import MLP, Autoencoder, IdentityBottleneck  # noqa: E402
from seqae.data.digits import load_digits_splits  # noqa: E402
from seqae.data.files import validate_array  # noqa: E402
from seqae.metrics.classification import classifier_accuracy  # noqa: E402
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
NUM_CLASSES = 10
INITS = ("random", "pretrained")


# ---------------------------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------------------------
def validate(cfg: dict[str, Any]) -> None:
    """Refuse impossible settings before any data is loaded (data-dependent limits are checked
    by :func:`check_label_budget` once the splits exist, still before training)."""
    budgets = cfg["labels_per_class"]
    if not isinstance(budgets, list) or not budgets:
        raise ConfigError(
            f"labels_per_class must be a non-empty list of label counts per class, got {budgets!r}"
        )
    for n in budgets:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigError(
                f"labels_per_class: every entry must be a positive integer (labelled images per "
                f"class for fine-tuning), got {n!r}"
            )
    if len(set(budgets)) != len(budgets):
        raise ConfigError(f"labels_per_class must not repeat a value, got {budgets}")
    if not isinstance(cfg["val_per_class"], int) or cfg["val_per_class"] < 1:
        raise ConfigError(
            f"val_per_class must be a positive integer (labelled validation images per class for "
            f"early stopping), got {cfg['val_per_class']!r}"
        )
    if not isinstance(cfg["num_seeds"], int) or cfg["num_seeds"] < 1:
        raise ConfigError(f"num_seeds must be at least 1, got {cfg['num_seeds']!r}")
    hidden = cfg["model"]["hidden"]
    if (
        not isinstance(hidden, list)
        or not hidden
        or any(not isinstance(h, int) or h <= 0 for h in hidden)
    ):
        raise ConfigError(
            f"model.hidden must list at least one positive hidden-layer size (the layers to "
            f"pretrain), got {hidden!r}"
        )
    if not 0.0 <= cfg["model"]["dropout"] < 1.0:
        raise ConfigError(f"model.dropout must be in [0, 1), got {cfg['model']['dropout']}")
    p, f = cfg["pretrain"], cfg["finetune"]
    if p["noise_kind"] not in ("gaussian", "masking"):
        raise ConfigError(
            f"pretrain.noise_kind must be 'gaussian' or 'masking', got {p['noise_kind']!r}"
        )
    if p["noise"] < 0 or (p["noise_kind"] == "masking" and p["noise"] >= 1):
        raise ConfigError(
            f"pretrain.noise must be >= 0 (and < 1 for masking noise, a drop probability), got {p['noise']}"
        )
    for block, key in (
        ("pretrain", "epochs"),
        ("pretrain", "batch_size"),
        ("finetune", "max_epochs"),
        ("finetune", "batch_size"),
        ("finetune", "patience"),
    ):
        if cfg[block][key] < 1:
            raise ConfigError(f"{block}.{key} must be at least 1, got {cfg[block][key]}")
    for block in (p, f):
        name = "pretrain" if block is p else "finetune"
        if block["lr"] <= 0:
            raise ConfigError(f"{name}.lr must be positive, got {block['lr']}")
    if f["weight_decay"] < 0:
        raise ConfigError(f"finetune.weight_decay must be >= 0, got {f['weight_decay']}")


class Splits(NamedTuple):
    x_train: Tensor  # (N_train, 64) in [0, 1]: all of it is used, unlabelled, for pretraining
    y_train: Tensor  # (N_train,): only the sampled labels_per_class per class are used
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor


def check_labelled_images(x: Tensor, y: Tensor, *, name: str) -> None:
    """``x``: ``(N, 64)`` floats in ``[0, 1]`` with ``N >= 1``; ``y``: ``(N,)`` ints in 0..9."""
    validate_array(x, name=f"{name} images", expected_shape=(None, PIXELS))
    validate_array(y, name=f"{name} labels", expected_shape=(x.shape[0],))
    if x.min() < 0 or x.max() > 1:
        raise ValueError(
            f"{name} images: pixel values must lie in [0, 1] (x = v / 16), got range "
            f"[{x.min().item():.3g}, {x.max().item():.3g}]"
        )
    if y.is_floating_point() or y.min() < 0 or y.max() >= NUM_CLASSES:
        raise ValueError(f"{name} labels: expected integer classes in 0..{NUM_CLASSES - 1}")


def load_data(cfg: dict[str, Any]) -> Splits:
    """The digits' stratified train/val/test splits, ``x = v / 16``."""
    data = load_digits_splits(
        val_fraction=cfg["data"]["val_fraction"],
        test_fraction=cfg["data"]["test_fraction"],
        seed=cfg["data"]["split_seed"],
    )
    splits = Splits(*data.train.tensors(), *data.val.tensors(), *data.test.tensors())
    for part in ("train", "val", "test"):
        check_labelled_images(getattr(splits, f"x_{part}"), getattr(splits, f"y_{part}"), name=part)
    return splits


def check_label_budget(cfg: dict[str, Any], data: Splits) -> None:
    """Every class must have ``labels_per_class`` training and ``val_per_class`` validation
    images to sample from."""
    for split, y, wanted, key in (
        ("train", data.y_train, max(cfg["labels_per_class"]), "labels_per_class"),
        ("validation", data.y_val, cfg["val_per_class"], "val_per_class"),
    ):
        counts = torch.bincount(y, minlength=NUM_CLASSES)
        smallest = int(counts.min())
        if wanted > smallest:
            raise ConfigError(
                f"{key}={wanted} is more than the smallest class of the {split} split holds "
                f"({smallest} images of digit {int(counts.argmin())}); expected at most {smallest}"
            )


def sample_per_class(labels: Tensor, n: int, *, generator: torch.Generator) -> Tensor:
    """Indices of ``n`` examples of every class, drawn without replacement, sorted."""
    picked = []
    for c in range(NUM_CLASSES):
        members = (labels == c).nonzero().flatten()
        if len(members) < n:
            raise ValueError(f"class {c} has {len(members)} examples, fewer than {n} requested")
        picked.append(members[torch.randperm(len(members), generator=generator)[:n]])
    return torch.cat(picked).sort().values


# ---------------------------------------------------------------------------------------------
# model, pretraining, fine-tuning
# ---------------------------------------------------------------------------------------------
def build_classifier(model_cfg: dict[str, Any]) -> MLP:
    """64 -> hidden... -> 10 logits; ``layers[i]`` (i < len(hidden)) are the pretrainable blocks."""
    return MLP(
        in_dim=PIXELS,
        out_dim=NUM_CLASSES,
        hidden=model_cfg["hidden"],
        activation=model_cfg["activation"],
        dropout=model_cfg["dropout"],
    )


def pretrain_layers(
    classifier: MLP,
    x: Tensor,
    pre_cfg: dict[str, Any],
    *,
    activation: str,
    seed: int,
    logger: MetricLogger,
    tag: str,
    compile_model: bool = False,
) -> list[float]:
    """Train ``classifier.layers[:-1]`` in place, one (denoising) autoencoder per layer
    (``torch.compile``-d in training with ``compile_model``).

    Returns each layer's mean training reconstruction loss over its last epoch.
    """
    order = torch.Generator().manual_seed(seed)
    h = x  # (N, 64): the unlabelled training images, then each layer's codes
    final_losses = []
    for i, encoder in enumerate(classifier.layers[:-1]):
        in_dim = h.shape[1]
        out_dim = encoder[0].out_features  # the block's affine map
        ae = Autoencoder(
            encoder=encoder,  # the classifier's own block: pretraining writes into it
            bottleneck=IdentityBottleneck(dim=out_dim),
            decoder=MLP(in_dim=out_dim, out_dim=in_dim),  # one affine map, discarded afterwards
            likelihood="bernoulli" if i == 0 or activation == "sigmoid" else "gaussian",
            noise=pre_cfg["noise"],
            noise_kind=pre_cfg["noise_kind"],
        ).to(x.device)
        forward = maybe_compile(ae, compile_model)  # shares ae's parameters
        optimizer = torch.optim.Adam(ae.parameters(), lr=pre_cfg["lr"])
        step = 0
        for _ in range(pre_cfg["epochs"]):
            ae.train()
            total, count = 0.0, 0
            for idx in torch.randperm(h.shape[0], generator=order).split(pre_cfg["batch_size"]):
                hb = h[idx.to(h.device)]
                loss = ae.reconstruction_loss(forward(hb).x_hat, hb)  # corrupts hb when noise > 0
                check_finite({f"pretrain_layer{i}": loss}, step=step)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total, count, step = total + loss.item() * len(idx), count + len(idx), step + 1
            logger.scalar(f"{tag}/pretrain_layer{i}_loss", total / count, step=step)
        final_losses.append(total / count)
        ae.eval()
        with torch.no_grad():
            h = encoder(h)  # (N, out_dim): the next layer's training data
    classifier.train()
    return final_losses


@torch.no_grad()
def _val_loss(classifier: MLP, x: Tensor, y: Tensor) -> float:
    classifier.eval()
    loss = F.cross_entropy(classifier(x), y).item()
    classifier.train()
    return loss


def finetune(
    classifier: MLP,
    x: Tensor,
    y: Tensor,
    x_val: Tensor,
    y_val: Tensor,
    ft_cfg: dict[str, Any],
    *,
    seed: int,
    logger: MetricLogger,
    tag: str,
    compile_model: bool = False,
) -> dict[str, Any]:
    """Supervised training of the whole network; keeps the lowest-validation-loss weights
    (``torch.compile``-d in training with ``compile_model``)."""
    forward = maybe_compile(classifier, compile_model)  # shares classifier's parameters
    optimizer = torch.optim.Adam(
        classifier.parameters(), lr=ft_cfg["lr"], weight_decay=ft_cfg["weight_decay"]
    )
    stopper = EarlyStopping(patience=ft_cfg["patience"])
    order = torch.Generator().manual_seed(seed)
    best_state, best_epoch, step, epoch = None, -1, 0, -1
    for epoch in range(ft_cfg["max_epochs"]):
        classifier.train()
        for idx in torch.randperm(x.shape[0], generator=order).split(ft_cfg["batch_size"]):
            idx = idx.to(x.device)
            loss = F.cross_entropy(forward(x[idx]), y[idx])
            check_finite({"finetune": loss}, step=step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        val_loss = _val_loss(classifier, x_val, y_val)
        logger.scalar(f"{tag}/val_loss", val_loss, step=epoch)
        stopper.step(val_loss)
        if stopper.improved:
            best_state, best_epoch = copy.deepcopy(classifier.state_dict()), epoch
        if stopper.should_stop:
            break
    assert best_state is not None
    classifier.load_state_dict(best_state)
    classifier.eval()
    return {
        "best_epoch": best_epoch,
        "epochs_run": epoch + 1,
        "best_val_loss": stopper.best,
        "val_accuracy": classifier_accuracy(classifier, x_val, y_val),
    }


def run_seed(
    cfg: dict[str, Any], data: Splits, seed: int, *, device: torch.device, logger: MetricLogger
) -> dict[str, Any]:
    """Pretrain once, then fine-tune both inits for every label budget; test accuracies."""
    started = time.perf_counter()
    seed_everything(seed)
    random_init = build_classifier(cfg["model"]).to(device)  # the shared starting point
    pretrained = copy.deepcopy(random_init)
    pretrain_losses = pretrain_layers(
        pretrained,
        data.x_train.to(device),
        cfg["pretrain"],
        activation=cfg["model"]["activation"],
        seed=seed,
        logger=logger,
        tag=f"seed{seed}",
        compile_model=cfg["train"]["compile"],
    )
    pretrain_seconds = time.perf_counter() - started
    val_idx = sample_per_class(
        data.y_val, cfg["val_per_class"], generator=torch.Generator().manual_seed(seed)
    )
    x_val, y_val = data.x_val[val_idx].to(device), data.y_val[val_idx].to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    result: dict[str, Any] = {
        "seed": seed,
        "pretrain_final_loss": pretrain_losses,
        "pretrain_seconds": pretrain_seconds,
        "budgets": {},
    }
    for n in cfg["labels_per_class"]:
        # the labelled subset depends on (seed, n) only, never on the order of the budgets
        idx = sample_per_class(
            data.y_train, n, generator=torch.Generator().manual_seed(seed * 1000 + n)
        )
        x, y = data.x_train[idx].to(device), data.y_train[idx].to(device)
        per_init = {}
        for init, start in (("random", random_init), ("pretrained", pretrained)):
            seed_everything(seed)  # same dropout draws for both inits
            classifier = copy.deepcopy(start)
            fit = finetune(
                classifier,
                x,
                y,
                x_val,
                y_val,
                cfg["finetune"],
                seed=seed,
                logger=logger,
                tag=f"seed{seed}/n{n}/{init}",
                compile_model=cfg["train"]["compile"],
            )
            per_init[init] = {
                **fit,
                "test_accuracy": classifier_accuracy(classifier, x_test, y_test),
            }
        result["budgets"][str(n)] = per_init
    result["seconds"] = time.perf_counter() - started
    return result


def train(cfg: dict[str, Any], data: Splits, run: RunSession) -> list[dict[str, Any]]:
    """Every seed's pretraining and fine-tuning, one part of the run each (finished seeds are
    read back on resume)."""
    device = get_device(cfg["device"])
    results = []
    with MetricLogger(run.dir, enabled=True) as logger:
        for seed in range(cfg["seed"], cfg["seed"] + cfg["num_seeds"]):
            result = run.part(
                f"seed_{seed}",
                functools.partial(run_seed, cfg, data, seed, device=device, logger=logger),
            )
            results.append(result)
            accs = "  ".join(
                f"n={n}: random {r['random']['test_accuracy']:.3f} "
                f"pretrained {r['pretrained']['test_accuracy']:.3f}"
                for n, r in result["budgets"].items()
            )
            print(f"pretrain: seed {seed}: {accs}  ({result['seconds']:.0f} s)")
    return results


# ---------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------
def summarize(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (None for a single value) and the values themselves."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "per_seed": list(values),
    }


def evaluate(
    run_dir: Path, cfg: dict[str, Any], results: list[dict[str, Any]], data: Splits
) -> dict[str, Any]:
    """Aggregate the seeds into the metrics, and draw the figure."""
    accuracy: dict[str, Any] = {}
    gain: dict[str, Any] = {}
    best_epoch: dict[str, Any] = {}
    for n in map(str, cfg["labels_per_class"]):
        per_init = {
            init: [r["budgets"][n][init]["test_accuracy"] for r in results] for init in INITS
        }
        accuracy[n] = {init: summarize(per_init[init]) for init in INITS}
        diffs = [p - q for p, q in zip(per_init["pretrained"], per_init["random"], strict=True)]
        gain[n] = {
            **summarize(diffs),
            "seeds_better": sum(d > 0 for d in diffs),
            "seeds_worse": sum(d < 0 for d in diffs),
        }
        best_epoch[n] = {
            init: statistics.fmean(r["budgets"][n][init]["best_epoch"] for r in results)
            for init in INITS
        }
    layers = len(cfg["model"]["hidden"])
    metrics = {
        "test_accuracy": accuracy,
        "gain": gain,
        "labels_per_class": cfg["labels_per_class"],
        "val_per_class": cfg["val_per_class"],
        "seeds": [r["seed"] for r in results],
        "mean_best_epoch": best_epoch,
        "pretrain_final_loss": [
            statistics.fmean(r["pretrain_final_loss"][i] for r in results) for i in range(layers)
        ],
        "pretrain_noise": cfg["pretrain"]["noise"],
        "pretrain_noise_kind": cfg["pretrain"]["noise_kind"],
        "hidden": cfg["model"]["hidden"],
        "activation": cfg["model"]["activation"],
        "n_train_unlabelled": data.x_train.shape[0],
        "n_test": data.x_test.shape[0],
        "seconds": sum(r["seconds"] for r in results),
    }
    fig = save_figure(metrics, run_dir / "figures")
    with MetricLogger(run_dir, enabled=True) as logger:
        logger.image("figures/accuracy", fig, step=0)
    return metrics


def save_figure(metrics: dict[str, Any], out_dir: Path) -> plt.Figure:
    """Left: test accuracy per budget and init (mean +- std, every seed as a dot). Right: the
    per-seed paired gain."""
    out_dir.mkdir(parents=True, exist_ok=True)
    budgets = [str(n) for n in metrics["labels_per_class"]]
    fig, (ax, ax_gain) = plt.subplots(
        1, 2, figsize=(8.5, 3.8), gridspec_kw={"width_ratios": [3, 2]}
    )
    colours = {"random": "tab:gray", "pretrained": "tab:blue"}
    # points with error bars, not bars: the accuracy axis does not start at 0
    for j, init in enumerate(INITS):
        offset = (j - 0.5) * 0.3
        for i, n in enumerate(budgets):
            s = metrics["test_accuracy"][n][init]
            ax.plot(
                [i + offset - 0.06] * len(s["per_seed"]),
                s["per_seed"],
                ".",
                color=colours[init],
                ms=4,
                alpha=0.6,
            )
            ax.errorbar(
                i + offset + 0.04,
                s["mean"],
                yerr=s["std"] or 0.0,
                fmt="o",
                color=colours[init],
                capsize=4,
                label=init if i == 0 else None,
            )
    ax.set_xlim(-0.6, len(budgets) - 0.4)
    ax.set_xticks(range(len(budgets)), [f"{n} labels/class" for n in budgets])
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{len(metrics['seeds'])} seeds: mean +- std, dots = seeds", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)

    for i, n in enumerate(budgets):
        g = metrics["gain"][n]
        ax_gain.plot([i] * len(g["per_seed"]), g["per_seed"], "k.", ms=5, alpha=0.6)
        ax_gain.errorbar(
            i + 0.15, g["mean"], yerr=g["std"] or 0.0, fmt="o", color="tab:blue", capsize=4
        )
    ax_gain.axhline(0.0, color="gray", lw=0.8)
    ax_gain.set_xticks(range(len(budgets)), [f"{n}/class" for n in budgets])
    ax_gain.set_xlim(-0.5, len(budgets) - 0.5)
    ax_gain.set_ylabel("pretrained - random accuracy")
    ax_gain.set_title("paired gain per seed", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / "accuracy.png", dpi=120)
    return fig


def main(cfg: dict[str, Any]) -> dict[str, Any]:
    require_single_process("pretrain")
    validate(cfg)
    data = load_data(cfg)
    check_label_budget(cfg, data)  # data-dependent limits, before the run folder is claimed
    # a finished run may be extended: resume=true num_seeds=N adds seeds, reusing the done ones
    neutral = (*RESULT_NEUTRAL_KEYS, "num_seeds")
    with RunSession(cfg, recipe="pretrain", neutral=neutral) as run:
        results = train(cfg, data, run)
        metrics = evaluate(run.dir, cfg, results, data)
        plt.close("all")
        for n in map(str, cfg["labels_per_class"]):
            a, g = metrics["test_accuracy"][n], metrics["gain"][n]
            std = {
                init: a[init]["std"] if a[init]["std"] is not None else float("nan")
                for init in INITS
            }
            print(
                f"pretrain: {n} labels/class: random {a['random']['mean']:.4f} +- "
                f"{std['random']:.4f}  pretrained {a['pretrained']['mean']:.4f} +- "
                f"{std['pretrained']:.4f}  gain {g['mean']:+.4f} (better on "
                f"{g['seeds_better']}/{len(results)} seeds)"
            )
        gains = ", ".join(
            f"{n} labels/class {metrics['gain'][n]['mean']:+.4f}"
            for n in map(str, cfg["labels_per_class"])
        )
        return run.finish(
            metrics, summary=f"test accuracy gain of pretraining over {len(results)} seeds: {gains}"
        )
