"""A decision tree of one-bit codes: hierarchical unsupervised clustering of 8x8 digits.

    seqae run binary_tree                              # full config, a few minutes on a CPU
    seqae run binary_tree --config binary_tree_tiny    # seconds; what the tests run

Each node of the tree is a small autoencoder whose bottleneck is one bit, seqae's
BinaryBottleneck with ``code_dim=1`` (straight-through Bernoulli bit, Bengio et al. 2013,
arXiv 1308.3432), optionally with a small continuous code next to it. The node is trained on the
training images that reach it; its bit (eval mode: ``p > 0.5``) sends each image to child 0 or
child 1, and each child is trained on its half, down to ``tree.depth`` (``2^depth`` leaves). A
node with fewer than ``tree.min_size`` training images, or whose bit sends every image the same
way, stops splitting and becomes a leaf. This is divisive (top-down) clustering, like bisecting
k-means (Steinbach, Karypis & Kumar 2000) with a learned split instead of 2-means.

The node objective, named terms with configurable weights:

- reconstruction ``||x - dec(bit, style)||^2``: with one bit and no style code the decoder can
  only draw two prototypes, so the bit learns a two-way split that is good for reconstruction
  (the 2-means split, found by gradient descent through the straight-through bit);
- minus the mutual information ``I(b_a; b_b)`` between the bits of an image and of one of its
  ``k`` nearest neighbours in pixel space within the node (IIC, Ji et al. 2019,
  arXiv 1807.06653, with neighbour pairs as in SCAN, Van Gansbeke et al. 2020,
  arXiv 2005.12320): high when the bit is balanced and neighbours agree, so a split that cuts
  through a dense region or leaves a child empty is penalised.

The bit is thresholded in training as well by default (``node.stochastic=false``): with sampled
bits an uninformative early bit is noise to the decoder, and the quickest way to remove that
noise is a constant bit, from which neither term recovers (the mutual information has zero
gradient at a constant code). Each node starts from a data-dependent init (the bit splits the
node's images at the median, the decoder draws their mean) and is trained from
``train.restarts_per_node`` seeds; the restart with the lowest node objective on all of the node's
images is kept (an unsupervised criterion; labels never choose anything).

Baseline in the same run: the same tree with 2-means splits (scikit-learn KMeans, ``n_init``
restarts) at every node. Scores on the test split, which is routed down the trained tree: leaf
purity (= many-to-one clustering accuracy: every leaf takes its majority class), the Hungarian
(one-to-one) clustering accuracy of every level of the tree (so the 8 or 16 nodes of a level
against 10 classes), NMI, and the accuracy of labelling each leaf with the majority class of its
*training* images (labels used only for that evaluation, never for training or selection).

Each node is :class:`seqae.core.classifier.BitAutoencoder`. Training a node (its restarts) is
a part of the run (:meth:`seqae.training.RunSession.part`): the kept model is saved under
``parts/seed<S>_node_<path>/`` (config.json + model.safetensors, loadable with
``seqae.load_pretrained``) and its record in ``parts/seed<S>_node_<path>.json``, so
``resume=true`` reuses the nodes already trained.

Writes to ``output_dir``: config.yaml, parts/, tb/, figures/ and metrics.json.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Callable
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
from seqae.core.classifier import BitAutoencoder  # noqa: E402
from seqae.data import load_digits_splits, validate_array  # noqa: E402
from seqae.data.neighbors import nearest_neighbors  # noqa: E402
from seqae.metrics.clustering import (  # noqa: E402
    clustering_accuracy,
    contingency_table,
    match_clusters,
    normalized_mutual_info,
    purity,
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
    tree, node, o, t = cfg["tree"], cfg["node"], cfg["objective"], cfg["train"]
    if not 1 <= tree["depth"] <= 10:
        raise ConfigError(f"tree.depth must be in 1..10 (2^depth leaves), got {tree['depth']}")
    if tree["min_size"] < 2:
        raise ConfigError(
            f"tree.min_size must be at least 2 (a split needs two images), got {tree['min_size']}"
        )
    if not node["hidden"] or any(h <= 0 for h in node["hidden"]):
        raise ConfigError(f"node.hidden must list positive layer sizes, got {node['hidden']}")
    if not 0 <= node["style_dim"] < PIXELS:
        raise ConfigError(
            f"node.style_dim must be in 0..{PIXELS - 1} (the input has {PIXELS} pixels), got {node['style_dim']}"
        )
    if o["neighbors"] < 0:
        raise ConfigError(f"objective.neighbors must be >= 0, got {o['neighbors']}")
    if o["neighbors"] >= tree["min_size"]:
        raise ConfigError(
            f"objective.neighbors={o['neighbors']} must be smaller than tree.min_size={tree['min_size']}: "
            "neighbours are mined among the images of a node"
        )
    for key in ("reconstruction_weight", "mutual_info_weight"):
        if o[key] < 0:
            raise ConfigError(f"objective.{key} must be >= 0, got {o[key]}")
    if o["reconstruction_weight"] == 0 and o["mutual_info_weight"] == 0:
        raise ConfigError(
            "objective: reconstruction_weight and mutual_info_weight are both 0, so nothing "
            "tells the bit how to split"
        )
    if o["mutual_info_weight"] > 0 and o["neighbors"] == 0:
        raise ConfigError("objective.mutual_info_weight > 0 needs objective.neighbors >= 1")
    if not t["seeds"] or len(set(t["seeds"])) != len(t["seeds"]):
        raise ConfigError(f"train.seeds must list distinct seeds, got {t['seeds']}")
    for key in ("steps", "batch_size", "restarts_per_node"):
        if t[key] < 1:
            raise ConfigError(f"train.{key} must be at least 1, got {t[key]}")
    if t["lr"] <= 0:
        raise ConfigError(f"train.lr must be positive, got {t['lr']}")
    if t["threads"] < 0:
        raise ConfigError(f"train.threads must be >= 0 (0: torch's default), got {t['threads']}")
    if cfg["eval"]["kmeans_n_init"] < 1:
        raise ConfigError(f"eval.kmeans_n_init must be >= 1, got {cfg['eval']['kmeans_n_init']}")


def load_data(cfg: dict[str, Any]) -> dict[str, Tensor]:
    """The digits splits as tensors ``x`` in ``[0, 1]`` ``(N, 64)`` and labels ``(N,)``."""
    d = cfg["data"]
    splits = load_digits_splits(
        val_fraction=d["val_fraction"], test_fraction=d["test_fraction"], seed=d["split_seed"]
    )
    data: dict[str, Tensor] = {}
    for name in ("train", "val", "test"):
        x, y = getattr(splits, name).tensors()
        data[f"x_{name}"], data[f"y_{name}"] = x, y
    check_data(data, min_size=cfg["tree"]["min_size"])
    return data


def check_data(data: dict[str, Tensor], *, min_size: int) -> None:
    """Stop with a clear error when the images cannot be split as configured."""
    validate_array(data["x_train"], name="train images", expected_shape=(None, PIXELS))
    for name in ("val", "test"):
        validate_array(
            data[f"x_{name}"],
            name=f"{name} images",
            expected_shape=(None, PIXELS),
            allow_empty=True,
        )
    n = data["x_train"].shape[0]
    if n < min_size:
        raise ConfigError(
            f"{n} training images are fewer than tree.min_size={min_size}: the root could not split"
        )


# ---------------------------------------------------------------------------------------------
# one node
# ---------------------------------------------------------------------------------------------
def bit_mutual_information(p_a: Tensor, p_b: Tensor) -> Tensor:
    """IIC's objective (Ji et al. 2019, arXiv 1807.06653, eqs. 1-3) for a one-bit code:
    ``I(b_a; b_b)`` in nats between the bits of paired images, from the batch's joint
    distribution ``P = mean_i [1 - p_a, p_a]^T [1 - p_b, p_b]`` (symmetrised). It is 0 for a
    constant bit and at most ``log 2``, reached by a balanced bit on which pairs always agree,
    so it asks for balanced children without a separate balance term."""
    q_a = torch.stack([1 - p_a, p_a], dim=1)  # (B, 2)
    q_b = torch.stack([1 - p_b, p_b], dim=1)
    joint = q_a.T @ q_b / p_a.shape[0]  # (2, 2)
    joint = ((joint + joint.T) / 2).clamp(min=1e-8)
    marg_a, marg_b = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)
    return (joint * (joint.log() - marg_a.log() - marg_b.log())).sum()


def node_objective(
    model: BitAutoencoder, x: Tensor, x_nb: Tensor | None, o: dict[str, Any]
) -> dict[str, Tensor]:
    """Named terms of the node objective for a batch ``x`` and its neighbours ``x_nb``."""
    p, x_hat = model(x)
    rec = F.mse_loss(x_hat, x, reduction="none").sum(1).mean()  # per image
    mi = rec.new_zeros(())
    if x_nb is not None:
        p_nb, _ = model(x_nb)
        mi = bit_mutual_information(p, p_nb)
    loss = o["reconstruction_weight"] * rec - o["mutual_info_weight"] * mi
    usage = (p > 0.5).float().mean().detach()  # fraction of the batch sent to child 1
    return {"loss": loss, "rec": rec, "mutual_info": mi, "bit_usage": usage}


def train_node(
    cfg: dict[str, Any], x: Tensor, *, seed: int, logger: MetricLogger, tag: str
) -> tuple[BitAutoencoder, dict[str, float]]:
    """Train one node's one-bit autoencoder on the images ``x`` that reach it."""
    node, o, t = cfg["node"], cfg["objective"], cfg["train"]
    seed_everything(seed)
    gen = torch.Generator().manual_seed(seed)
    model = BitAutoencoder(
        in_dim=PIXELS,
        hidden=node["hidden"],
        style_dim=node["style_dim"],
        stochastic=node["stochastic"],
    ).to(x.device)
    with torch.no_grad():
        # Data-dependent init (Salimans & Kingma 2016, arXiv 1602.07868, sec. 3). (1) Shift the
        # bit's logit so the untrained bit splits the node's images at the median. (2) Shift the
        # decoder's output bias so the untrained reconstruction is on average the node's mean
        # image. Without (2) the first steps' reconstruction gradient is the same for every
        # image and drags all bits to one side; without (1) they start there. Either way the
        # decoder cannot learn what the bit means until images cross back over.
        logits = model.bottleneck.logits(model.encoder(x))[:, 0]
        model.bottleneck.proj.bias -= logits.median()
        _, x_hat = model(x)
        model.decoder.layers[-1][0].bias += (x - x_hat).mean(0)
    compiled = maybe_compile(model, t["compile"])  # shares model's parameters
    optimizer = torch.optim.Adam(model.parameters(), lr=t["lr"])
    use_nb = o["mutual_info_weight"] > 0
    neighbors = nearest_neighbors(x, min(o["neighbors"], x.shape[0] - 1)) if use_nb else None
    n, batch = x.shape[0], min(t["batch_size"], x.shape[0])
    started = time.perf_counter()
    order, cursor = torch.randperm(n, generator=gen), 0
    terms: dict[str, Tensor] = {}
    for step in range(t["steps"]):
        if cursor + batch > n:
            order, cursor = torch.randperm(n, generator=gen), 0
        idx = order[cursor : cursor + batch]
        cursor += batch
        x_nb = None
        if neighbors is not None:
            pick = torch.randint(neighbors.shape[1], (batch,), generator=gen)
            x_nb = x[neighbors[idx, pick].to(x.device)]
        terms = node_objective(compiled, x[idx.to(x.device)], x_nb, o)
        check_finite(terms, step=step)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        if (step + 1) % t["log_every"] == 0:
            logger.scalars(terms, step=step + 1, prefix=f"{tag}/")
    with torch.no_grad():  # the objective on all of the node's images, eval mode, no labels
        model.eval()
        x_nb = x[neighbors[:, 0].to(x.device)] if neighbors is not None else None
        node_loss = float(node_objective(model, x, x_nb, o)["loss"])
        model.train()
    return model, {"node_loss": node_loss, "train_seconds": time.perf_counter() - started}


# ---------------------------------------------------------------------------------------------
# the tree
# ---------------------------------------------------------------------------------------------
class Node:
    """A node of the tree: ``path`` is its bit string from the root ("" for the root).

    (A plain class: ``seqae run`` imports a recipe without registering it in ``sys.modules``,
    which ``@dataclass`` needs to resolve string annotations.)
    """

    def __init__(self, path: str, train_idx: Tensor) -> None:
        self.path = path
        self.train_idx = train_idx  # indices of the training images that reach this node
        self.splitter: Callable[[Tensor], Tensor] | None = None  # images -> bool; None: leaf
        self.prototypes: Tensor | None = None  # decoded bit 0 / bit 1, when the split has them
        self.reason = ""  # why a leaf stopped splitting
        self.children: list[Node] = []

    @property
    def depth(self) -> int:
        return len(self.path)


def build_tree(
    x: Tensor,
    *,
    depth: int,
    min_size: int,
    train_split: Callable[[Tensor, str], tuple[Callable[[Tensor], Tensor], Tensor | None]],
) -> Node:
    """Grow a tree breadth-first. ``train_split(x_node, path)`` returns the node's split
    function (and optional prototype images); a node stops at ``depth``, below ``min_size``
    images, or when its split sends every image to one side."""
    root = Node(path="", train_idx=torch.arange(x.shape[0]))
    frontier = [root]
    while frontier:
        node = frontier.pop(0)
        if node.depth >= depth:
            node.reason = "max depth"
            continue
        if len(node.train_idx) < min_size:
            node.reason = f"fewer than min_size={min_size} images"
            continue
        splitter, protos = train_split(x[node.train_idx], node.path)
        bits = splitter(x[node.train_idx]).cpu()
        if bits.all() or not bits.any():
            node.reason = "degenerate split (all images on one side)"
            continue
        node.splitter, node.prototypes = splitter, protos
        node.children = [
            Node(path=node.path + "0", train_idx=node.train_idx[~bits]),
            Node(path=node.path + "1", train_idx=node.train_idx[bits]),
        ]
        frontier.extend(node.children)
    return root


def walk(root: Node) -> list[Node]:
    """All nodes, breadth-first."""
    nodes, queue = [], [root]
    while queue:
        node = queue.pop(0)
        nodes.append(node)
        queue.extend(node.children)
    return nodes


def route(root: Node, x: Tensor) -> list[str]:
    """The leaf path each image of ``x`` reaches."""
    paths = [""] * x.shape[0]
    stack = [(root, torch.arange(x.shape[0]))]
    while stack:
        node, idx = stack.pop()
        if not node.children or len(idx) == 0:
            for i in idx.tolist():
                paths[i] = node.path
            continue
        bits = node.splitter(x[idx]).cpu()
        stack.append((node.children[0], idx[~bits]))
        stack.append((node.children[1], idx[bits]))
    return paths


def tree_scores(
    root: Node, data: dict[str, Tensor], *, depth: int
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Purity, accuracies and per-node sizes of a tree, on the test split (see module doc)."""
    test_paths = route(root, data["x_test"])
    train_paths = route(root, data["x_train"])
    y_test, y_train = data["y_test"], data["y_train"]
    ids = {p: i for i, p in enumerate(sorted(set(train_paths) | set(test_paths)))}
    leaf_test = torch.tensor([ids[p] for p in test_paths])
    leaf_train = torch.tensor([ids[p] for p in train_paths])
    # label each leaf by the majority class of its training images, then score the test images
    leaf_class = match_clusters(y_train, leaf_train, mapping="many_to_one").mapping
    transfer = float(
        np.mean(
            [leaf_class.get(int(c), -1) == int(t) for c, t in zip(leaf_test, y_test, strict=True)]
        )
    )
    per_level = {}
    for level in range(1, depth + 1):
        prefixes = sorted({p[:level] for p in test_paths})
        cut = torch.tensor([prefixes.index(p[:level]) for p in test_paths])
        per_level[str(level)] = {
            "clusters": int(cut.unique().numel()),
            "hungarian_acc": clustering_accuracy(y_test, cut),
            "many_to_one_acc": clustering_accuracy(y_test, cut, mapping="many_to_one"),
        }
    sizes = {}
    test_counts = {p: test_paths.count(p) for p in set(test_paths)}
    for node in walk(root):
        n_test = sum(c for p, c in test_counts.items() if p.startswith(node.path))
        sizes[node.path or "root"] = {
            "depth": node.depth,
            "n_train": len(node.train_idx),
            "n_test": n_test,
            "leaf": not node.children,
            **({"stopped": node.reason} if not node.children else {}),
        }
    scores = {
        "leaf_purity": purity(y_test, leaf_test),
        "leaf_purity_train": purity(y_train, leaf_train),
        "hungarian_acc_leaves": clustering_accuracy(y_test, leaf_test),
        "leaf_label_transfer_acc": transfer,
        "nmi": normalized_mutual_info(y_test, leaf_test),
        "num_leaves": sum(1 for n in walk(root) if not n.children),
        "per_level": per_level,
        "node_sizes": sizes,
    }
    return scores, test_paths, train_paths


# ---------------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------------
def main(cfg: dict[str, Any]) -> dict[str, Any]:
    require_single_process("binary_tree")
    validate(cfg)
    data = load_data(cfg)  # data-dependent checks, before the run folder is claimed
    threads = torch.get_num_threads()
    if cfg["train"]["threads"]:
        torch.set_num_threads(cfg["train"]["threads"])  # tiny models: one thread is fastest
    try:
        with RunSession(cfg, recipe="binary_tree") as run:
            metrics, summary = grow_trees(cfg, data, run)
            return run.finish(metrics, summary=summary)
    finally:
        torch.set_num_threads(threads)


def _kmeans_splitter(x: Tensor, *, seed: int, n_init: int) -> Callable[[Tensor], Tensor]:
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=2, n_init=n_init, random_state=seed).fit(x.cpu().numpy())
    return lambda z: torch.as_tensor(km.predict(z.cpu().numpy()) == 1)


def grow_trees(
    cfg: dict[str, Any], data: dict[str, Tensor], run: RunSession
) -> tuple[dict[str, Any], str]:
    """Grow one AE tree and one 2-means tree per seed (each trained node a part of the run),
    score them, draw the figures. Returns the metrics and a summary line."""
    device = get_device(cfg["device"])
    x_train = data["x_train"].to(device)
    logger = MetricLogger(run.dir, enabled=True)
    tree_cfg = cfg["tree"]
    seconds, trained = 0.0, 0  # training time of every node; nodes trained in this session

    def train_restarts(x: Tensor, path: str, seed: int, part: str) -> dict[str, Any]:
        """Train a node from several seeds; keep the lowest unsupervised node objective."""
        nonlocal trained
        candidates = []
        for restart in range(cfg["train"]["restarts_per_node"]):
            node_seed = seed * 100_003 + int("1" + path, 2) + 7919 * restart
            tag = f"seed{seed}/node_{path or 'root'}/restart{restart}"
            model, info = train_node(cfg, x, seed=node_seed, logger=logger, tag=tag)
            candidates.append((info["node_loss"], restart, model, info))
        node_loss, restart, model, _ = min(candidates, key=lambda c: (c[0], c[1]))
        model.save_pretrained(run.part_dir(part))
        trained += 1
        return {
            "node_loss": node_loss,
            "train_seconds": sum(c[3]["train_seconds"] for c in candidates),
            "chosen_restart": restart,
            "node_losses": [c[0] for c in candidates],
        }

    results: list[dict[str, Any]] = []
    first: tuple[Node, list[str]] | None = None
    for seed in cfg["train"]["seeds"]:

        def ae_split(x: Tensor, path: str, seed: int = seed):
            nonlocal seconds
            part = f"seed{seed}_node_{path or 'root'}"
            info = run.part(part, functools.partial(train_restarts, x, path, seed, part))
            seconds += info["train_seconds"]
            model = BitAutoencoder.from_pretrained(run.part_dir(part), map_location=device)
            return model.split, model.prototypes().cpu()

        def km_split(x: Tensor, path: str, seed: int = seed):
            return _kmeans_splitter(x, seed=seed, n_init=cfg["eval"]["kmeans_n_init"]), None

        ae_tree = build_tree(
            x_train, depth=tree_cfg["depth"], min_size=tree_cfg["min_size"], train_split=ae_split
        )
        km_tree = build_tree(
            x_train, depth=tree_cfg["depth"], min_size=tree_cfg["min_size"], train_split=km_split
        )
        ae, test_paths, _ = tree_scores(ae_tree, data, depth=tree_cfg["depth"])
        km, _, _ = tree_scores(km_tree, data, depth=tree_cfg["depth"])
        results.append({"seed": seed, "bit_tree": ae, "kmeans_tree": km})
        if first is None:
            first = (ae_tree, test_paths)
        print(
            f"binary_tree: seed {seed}: {ae['num_leaves']} leaves, test leaf purity {ae['leaf_purity']:.4f} "
            f"(2-means tree {km['leaf_purity']:.4f}), Hungarian acc of the leaves "
            f"{ae['hungarian_acc_leaves']:.4f} ({km['hungarian_acc_leaves']:.4f})"
        )

    def across_seeds(kind: str, key: str) -> dict[str, Any]:
        values = [r[kind][key] for r in results]
        std = statistics.pstdev(values) if len(values) > 1 else 0.0
        return {"mean": statistics.fmean(values), "std": std, "per_seed": values}

    headline = ("leaf_purity", "hungarian_acc_leaves", "leaf_label_transfer_acc", "nmi")
    metrics: dict[str, Any] = {}
    for kind, prefix in (("bit_tree", ""), ("kmeans_tree", "kmeans_tree_")):
        for key in headline:
            s = across_seeds(kind, key)
            metrics[f"{prefix}{key}"] = s["mean"]
            metrics[f"{prefix}{key}_std"] = s["std"]
            metrics[f"{prefix}{key}_per_seed"] = s["per_seed"]
    levels = [str(level) for level in range(1, tree_cfg["depth"] + 1)]
    metrics["per_level"] = {
        level: {
            key: statistics.fmean(r["bit_tree"]["per_level"][level][key] for r in results)
            for key in ("clusters", "hungarian_acc", "many_to_one_acc")
        }
        for level in levels
    }
    metrics["kmeans_tree_per_level"] = {
        level: {
            key: statistics.fmean(r["kmeans_tree"]["per_level"][level][key] for r in results)
            for key in ("clusters", "hungarian_acc", "many_to_one_acc")
        }
        for level in levels
    }
    metrics.update(
        {
            "depth": tree_cfg["depth"],
            "min_size": tree_cfg["min_size"],
            "num_leaves_per_seed": [r["bit_tree"]["num_leaves"] for r in results],
            "node_sizes": results[0]["bit_tree"]["node_sizes"],  # first seed's tree
            "seeds": results,
            "n_train": int(data["x_train"].shape[0]),
            "n_test": int(data["x_test"].shape[0]),
            "train_seconds": seconds,
            "nodes_trained_now": trained,  # 0 when resume=true found every node
        }
    )
    assert first is not None
    figures = save_figures(first[0], first[1], data, run.dir / "figures", cfg["figures"])
    for name, fig in figures.items():
        logger.image(f"figures/{name}", fig, step=0)
        plt.close(fig)
    logger.close()
    summary = (
        f"test leaf purity {metrics['leaf_purity']:.4f} +- {metrics['leaf_purity_std']:.4f} "
        f"(2-means tree {metrics['kmeans_tree_leaf_purity']:.4f}); Hungarian acc of the leaves "
        f"{metrics['hungarian_acc_leaves']:.4f} ({metrics['kmeans_tree_hungarian_acc_leaves']:.4f})"
    )
    return metrics, summary


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def save_figures(
    root: Node,
    test_paths: list[str],
    data: dict[str, Tensor],
    out_dir: Path,
    fig_cfg: dict[str, Any],
) -> dict[str, plt.Figure]:
    out_dir.mkdir(parents=True, exist_ok=True)
    x, y = data["x_test"], data["y_test"]
    nodes = walk(root)
    depth = max(n.depth for n in nodes)
    n_show = fig_cfg["examples_per_node"]
    ncol = math.ceil(math.sqrt(n_show))
    slots = 2**depth
    figs: dict[str, plt.Figure] = {}

    # the tree: every node at its level, centred over its subtree's slots
    fig = plt.figure(figsize=(max(6.0, slots * 1.05), (depth + 1) * 1.7))
    line_ax = fig.add_axes((0, 0, 1, 1))
    line_ax.set_xlim(0, 1)
    line_ax.set_ylim(0, 1)
    line_ax.axis("off")
    width = min(0.8 / slots, 0.12)
    height = 0.55 / (depth + 1)
    centre: dict[str, tuple[float, float]] = {}
    for node in nodes:
        index = int(node.path, 2) if node.path else 0
        span = 2 ** (depth - node.depth)
        cx = (index * span + span / 2) / slots
        cy = 0.94 * (1 - (node.depth + 0.5) / (depth + 1))  # the top 6% for the title
        centre[node.path] = (cx, cy)
        members = [i for i, p in enumerate(test_paths) if p.startswith(node.path)]
        ax = fig.add_axes((cx - width / 2, cy - height / 2, width, height))
        if members:
            show_images(ax, x[members[:n_show]], ncol=ncol, gap_color="#d0d0d0")
            counts = torch.bincount(y[members], minlength=10)
            maj = int(counts.argmax())
            ax.set_title(
                f"{node.path or 'root'}  n={len(members)}\nmajority {maj} ({counts[maj] / len(members):.0%})",
                fontsize=6,
            )
        else:
            ax.axis("off")
            ax.set_title(f"{node.path or 'root'}  n=0", fontsize=6)
        if node.prototypes is not None:  # what the node's decoder draws for bit 0 and bit 1
            proto_ax = fig.add_axes(
                (cx - width / 4, cy - height / 2 - 0.3 * height, width / 2, 0.25 * height)
            )
            show_images(proto_ax, node.prototypes, ncol=2, gap_color="#d0d0d0")
            proto_ax.set_xlabel("decoded bit 0 | 1", fontsize=5, labelpad=1)
    for node in nodes:
        for child in node.children:
            (x0, y0), (x1, y1) = centre[node.path], centre[child.path]
            top = y0 - height / 2 - (0.4 * height if node.prototypes is not None else 0.02)
            line_ax.plot([x0, x1], [top, y1 + height / 2 + 0.04], color="#888", lw=0.8)
    fig.suptitle(
        "binary-code tree: test images reaching each node (path = bits from the root)", fontsize=9
    )
    figs["tree"] = fig

    # leaves against classes
    leaves = sorted(set(test_paths))
    leaf_ids = torch.tensor([leaves.index(p) for p in test_paths])
    counts, clusters, classes = contingency_table(y, leaf_ids)
    fig, ax = plt.subplots(figsize=(5, 0.3 * len(clusters) + 1.5))
    ax.imshow(counts, cmap="Blues", aspect="auto")
    for (i, j), v in np.ndenumerate(counts):
        if v:
            ax.text(
                j,
                i,
                str(v),
                ha="center",
                va="center",
                fontsize=6,
                color="white" if v > counts.max() / 2 else "black",
            )
    ax.set_yticks(range(len(clusters)), [leaves[int(c)] or "root" for c in clusters], fontsize=7)
    ax.set_xticks(range(len(classes)), [str(c) for c in classes])
    ax.set_xlabel("true class")
    ax.set_ylabel("leaf")
    ax.set_title(f"test images per leaf and class (purity {purity(y, leaf_ids):.3f})", fontsize=9)
    figs["leaves"] = fig

    for name, f in figs.items():
        if name != "tree":
            f.tight_layout()
        f.savefig(out_dir / f"{name}.png", dpi=110)
    return figs
