"""Lossy compression with VQ-VAE codes, against PCA with uniformly quantised coefficients.

    seqae run compress                                # rate-distortion on the digits, minutes
    seqae run compress --config compress_tiny         # seconds; what the tests run
    seqae run compress stage=encode model_dir=runs/vqvae/model output_dir=runs/enc
    seqae run compress stage=decode model_dir=runs/vqvae/model codes=runs/enc/codes.sqc \\
        output_dir=runs/dec

``stage=all`` trains one VQ-VAE (van den Oord et al. 2017, arXiv 1711.00937; the model of
:mod:`seqae.core.vqvae` on the data of :mod:`seqae.data.images`, as in ``recipes/vqvae.py``)
per entry of ``rate_points``, each entry overriding ``vqvae.model`` (the number of code
vectors per image and the codebook size ``K`` set the rate; an entry may also change
``vqvae.quantizer`` or ``vqvae.train`` settings). Each model encodes the test set to a code
file (``seqae.codes``: header with magic, version, model hash, CRCs) once per coding:
``packed`` (``ceil(log2 K)`` bits per code), ``adaptive`` (an arithmetic code whose model
learns the code frequencies while coding), ``arithmetic`` (a static arithmetic code under the
file's own code frequencies, whose table is stored in, and paid for by, the file) and
``zlib``. Every file is read back: the codes must equal the model's, and the images decoded
from the file give the distortion.

Rate is the size of the whole file (header, frequency table and payload) in bits divided by
the number of test images; distortion is the per-pixel mean squared error on the test set.

Baseline: PCA fitted on the training set keeping ``k`` coefficients, each uniformly
quantised to ``b`` bits (``seqae.codes.QuantizedPCA``, the classical transform code), written
with the same file format and codings, over a grid of ``(k, b)`` and quantiser ranges. Since
two codes can be time-shared (each image coded by one or the other), every rate-distortion
pair on the lower convex hull of the baseline's points is achievable; the VQ-VAE is compared
against that hull at its own rate, coding by coding.

Each rate point is one part of the run: ``resume=true`` reuses the finished ones (and may add
rate points or change the PCA grid). ``stage=encode`` and ``stage=decode`` run the same coding
on the command line with a saved model (``model_dir``: ``runs/vqvae/model``, or a rate point's
``parts/<name>/model``): encode writes the test set's codes to ``codes``; decode reads them
back (refusing codes from another model), decodes, and reports the distortion. Both read the
data settings from ``model_dir/../config.yaml`` when it has them. The ``seqae codes`` command
does the same for any ``.npy`` array.

Writes to ``output_dir``: config.yaml, parts/<rate point>/ (config.yaml, model/ and the code
files ``<rate point>.<coding>.sqc``), tb/, figures/rate_distortion.png and
figures/reconstructions.png, metrics.json.
"""

from __future__ import annotations

import copy
import math
import re
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from seqae.codes import (  # noqa: E402
    CODINGS,
    QuantizedPCA,
    decode_codes,
    decode_from_file,
    decode_model_codes,
    empirical_entropy_bits,
    encode_codes,
    encode_to_file,
    model_codes,
    model_hash,
    read_codes,
)
from seqae.config import ConfigError, load_config, save_config  # noqa: E402
from seqae.core import Autoencoder  # noqa: E402
from seqae.core.vqvae import (  # noqa: E402
    build_vqvae,
    check_vqvae_fits,
    check_vqvae_settings,
    reconstruction_loss,
)
from seqae.data.images import ImageSplits, check_image_data_settings, load_image_splits  # noqa: E402
from seqae.metrics import reconstruction_error  # noqa: E402
from seqae.plotting import show_images  # noqa: E402
from seqae.training import (  # noqa: E402
    RESULT_NEUTRAL_KEYS,
    DistributedContext,
    EarlyStopping,
    MetricLogger,
    RunSession,
    autocast_context,
    check_finite,
    init_distributed,
    make_loader,
    maybe_compile,
    progress,
    require_single_process,
    seed_everything,
    set_epoch,
)

STAGES = ("all", "encode", "decode")
#: Keys that cannot change a finished rate point: a resumed run may add rate points, change
#: the PCA grid or the figures.
NEUTRAL_KEYS = (
    *RESULT_NEUTRAL_KEYS,
    "rate_points",
    "pca",
    "figure_codings",
    "vqvae.train.progress",
    "vqvae.train.log_every",
    "vqvae.train.compile",
)


# ---------------------------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------------------------
POINT_BLOCKS = ("model", "quantizer", "train")  # the vqvae blocks a rate point may change


def point_block(cfg: dict[str, Any], key: str) -> str:
    """Which vqvae block a rate-point key belongs to (their key names are distinct)."""
    blocks = [b for b in POINT_BLOCKS if key in cfg["vqvae"][b]]
    if len(blocks) != 1:
        valid = ", ".join(k for b in POINT_BLOCKS for k in cfg["vqvae"][b])
        raise ConfigError(
            f"rate point key {key!r} is not a key of vqvae.model, vqvae.quantizer or "
            f"vqvae.train; valid keys: {valid}"
        )
    return blocks[0]


def rate_point_config(cfg: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """The VQ-VAE settings of one rate point: ``seed`` and the ``vqvae`` blocks with
    ``point``'s settings applied (the layout of a vqvae run's config)."""
    blocks = copy.deepcopy(cfg["vqvae"])
    for key, value in point.items():
        blocks[point_block(cfg, key)][key] = copy.deepcopy(value)
    return {"seed": cfg["seed"], **blocks}


def point_name(point: dict[str, Any]) -> str:
    """A directory name for a rate point, e.g. ``codebook_size16-num_codes2``."""
    name = "-".join(f"{k}{v}" for k, v in sorted(point.items()))
    return re.sub(r"[^\w.-]+", "_", name).strip("_")  # lists: channels[16, 32] -> channels_16_32


def check_train_settings(t: dict[str, Any], *, prefix: str) -> None:
    """Refuse impossible ``train`` settings (``prefix`` names the block in the message)."""
    for key in ("epochs", "batch_size", "patience", "log_every"):
        if t[key] < 1:
            raise ConfigError(f"{prefix}{key} must be at least 1, got {t[key]}")
    if t["threads"] < 0:
        raise ConfigError(f"{prefix}threads must be >= 0 (0: torch's default), got {t['threads']}")
    if t["lr"] <= 0:
        raise ConfigError(f"{prefix}lr must be positive, got {t['lr']}")


def validate(cfg: dict[str, Any]) -> None:
    """Refuse impossible settings before any data is loaded or model trained."""
    if cfg["stage"] not in STAGES:
        raise ConfigError(f"stage must be one of {', '.join(STAGES)}, got {cfg['stage']!r}")
    if cfg["coding"] not in CODINGS:
        raise ConfigError(f"coding must be one of {', '.join(CODINGS)}, got {cfg['coding']!r}")
    v = cfg["vqvae"]
    check_image_data_settings(v["data"], prefix="vqvae.data.")
    check_vqvae_settings(v["model"], v["quantizer"], prefix="vqvae.")
    check_train_settings(v["train"], prefix="vqvae.train.")
    if cfg["stage"] != "all":
        if not cfg["model_dir"]:
            raise ConfigError(f"stage={cfg['stage']} needs model_dir, a saved VQ-VAE directory")
        return
    if not cfg["codings"] or any(c not in CODINGS for c in cfg["codings"]):
        raise ConfigError(f"codings must list some of {', '.join(CODINGS)}, got {cfg['codings']!r}")
    points = cfg["rate_points"]
    if not points or not all(isinstance(p, dict) and p for p in points):
        raise ConfigError(
            "rate_points must be a non-empty list of mappings of vqvae.model settings, e.g. "
            "[{num_codes: 1, codebook_size: 16}]"
        )
    names = [point_name(p) for p in points]
    if len(set(names)) != len(names):
        raise ConfigError(f"rate_points has duplicates: {names}")
    for i, p in enumerate(points):
        point_cfg, where = rate_point_config(cfg, p), f"rate_points[{i}]: vqvae."
        check_vqvae_settings(point_cfg["model"], point_cfg["quantizer"], prefix=where)
        check_train_settings(point_cfg["train"], prefix=f"{where}train.")
    if not cfg["figure_codings"] or any(c not in cfg["codings"] for c in cfg["figure_codings"]):
        raise ConfigError(
            f"figure_codings {cfg['figure_codings']} must be among codings {cfg['codings']}"
        )
    pca = cfg["pca"]
    if not pca["components"] or any(k < 1 for k in pca["components"]):
        raise ConfigError(f"pca.components must list positive ints, got {pca['components']}")
    if pca["max_bits"] < 1:
        raise ConfigError(f"pca.max_bits must be >= 1, got {pca['max_bits']}")
    if not pca["bits"] or any(not 1 <= b <= 16 for b in pca["bits"]):
        raise ConfigError(f"pca.bits must list ints in 1..16, got {pca['bits']}")
    if not pca["clip_sigmas"] or any(c is not None and c <= 0 for c in pca["clip_sigmas"]):
        raise ConfigError(
            "pca.clip_sigmas must list positive numbers or null (min/max range), "
            f"got {pca['clip_sigmas']}"
        )


def check_data(cfg: dict[str, Any], x_train: Tensor) -> None:
    """Settings that depend on the data: the PCA grid and every rate point's model must fit."""
    n, d = x_train.shape[0], math.prod(x_train.shape[1:])
    too_many = [k for k in cfg["pca"]["components"] if k > min(n, d)]
    if too_many:
        raise ConfigError(
            f"pca.components {too_many} exceed min(training samples, values per sample) = "
            f"min({n}, {d}); expected at most {min(n, d)}"
        )
    for i, p in enumerate(cfg["rate_points"]):
        model_cfg = rate_point_config(cfg, p)["model"]
        check_vqvae_fits(model_cfg, x_train, prefix=f"rate_points[{i}]: vqvae.")


# ---------------------------------------------------------------------------------------------
# training one rate point
# ---------------------------------------------------------------------------------------------
def train_rate_point(
    point_cfg: dict[str, Any],
    data: ImageSplits,
    ctx: DistributedContext,
    model_dir: Path,
    *,
    logger: MetricLogger,
    tag: str,
) -> dict[str, Any]:
    """Train one rate point's VQ-VAE (the loop of ``recipes/vqvae.py`` without checkpoints:
    a rate point is resumed whole) and save the best-validation weights in ``model_dir``."""
    t = point_cfg["train"]
    seed_everything(point_cfg["seed"])  # every rate point reproducible on its own
    loader = make_loader(
        TensorDataset(data.train), batch_size=t["batch_size"], shuffle=True,
        seed=point_cfg["seed"], ctx=ctx,
    )  # fmt: skip
    x_val = data.val.to(ctx.device)
    model = build_vqvae(point_cfg["model"], point_cfg["quantizer"], data.train).to(ctx.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=t["lr"])
    stopper = EarlyStopping(patience=t["patience"], min_delta=t["min_delta"])
    forward = maybe_compile(model, t["compile"])
    step, epoch = 0, -1
    for epoch in range(t["epochs"]):
        if stopper.should_stop:
            break
        set_epoch(loader, epoch)
        model.train()
        for (x,) in progress(loader, desc=f"{tag} epoch {epoch}", enabled=t["progress"]):
            x = x.to(ctx.device, non_blocking=True)
            with autocast_context(ctx.device):
                out = forward(x)
            rec = reconstruction_loss(model, out.x_hat.float(), x)
            vq = out.loss.float()  # beta * commitment (+ codebook loss without EMA)
            loss = rec + vq
            check_finite({"loss": loss, "rec": rec, "vq": vq}, step=step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if t["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"])
            optimizer.step()
            step += 1
            if step % t["log_every"] == 0:
                logger.scalars({"loss": loss, "rec": rec, "vq": vq}, step=step, prefix=f"{tag}/")
        val_mse = reconstruction_error(model, x_val, batch_size=512).mean
        logger.scalar(f"{tag}/val_mse", val_mse, step=step)
        stopper.step(val_mse)
        if stopper.improved:
            model.save_pretrained(model_dir)
    return {"epochs_run": epoch + 1, "steps": step, "best_val_mse": stopper.best}


# ---------------------------------------------------------------------------------------------
# coding
# ---------------------------------------------------------------------------------------------
def mse(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Per-element mean squared error."""
    a_t, b_t = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return torch.mean((a_t.reshape(b_t.shape) - b_t) ** 2).item()


def code_vqvae(
    model: Autoencoder, x_test: Tensor, codes_dir: Path, name: str, codings: list[str]
) -> dict[str, Any]:
    """Write the test set's codes once per coding, read each back, decode, measure.

    The distortion is that of the images decoded from the file; the codes read back must equal
    the model's codes exactly.
    """
    codes = model_codes(model, x_test)
    K = model.bottleneck.codebook_size
    record: dict[str, Any] = {
        "name": name,
        "codebook_size": K,
        "codes_per_sample": math.prod(codes.shape[1:]),
        "entropy_bits_per_sample": empirical_entropy_bits(codes, K) / len(codes),
        "files": {},
    }
    for coding in codings:
        path = codes_dir / f"{name}.{coding}.sqc"
        info = encode_to_file(model, x_test, path, coding=coding)
        if path.stat().st_size != info.file_bytes:
            raise RuntimeError(
                f"{path}: {path.stat().st_size} bytes on disk, {info.file_bytes} reported"
            )
        read = read_codes(path, expected_model_hash=model_hash(model))
        if not np.array_equal(read.codes, codes):
            raise RuntimeError(f"{path}: the codes read back differ from the model's codes")
        decoded = decode_model_codes(model, read.codes)
        record["mse"] = mse(decoded, x_test)  # the same for every coding: the codes are equal
        record["files"][coding] = {
            "path": str(path),
            "file_bits_per_sample": info.file_bits_per_sample,
            "payload_bits_per_sample": info.payload_bits_per_sample,
            "file_bytes": info.file_bytes,
            "header_bytes": info.header_bytes,
        }
    return record


def pca_points(
    x_train: Tensor, x_test: Tensor, pca_cfg: dict[str, Any], codings: list[str]
) -> list[dict[str, Any]]:
    """Rate and distortion of every (k, bits, range) of the quantised-PCA grid, per coding.

    Rates are the sizes of the code files' bytes (built in memory: the same bytes
    ``write_codes`` would write). The cheap codings are decoded back as a check; the
    arithmetic coders' round trips are covered by tests/test_codes.py.
    """
    train, test = x_train.flatten(1).double().numpy(), x_test.flatten(1).double().numpy()
    basis = QuantizedPCA.principal_axes(train)  # one decomposition for the whole grid
    points = []
    for k in pca_cfg["components"]:
        for bits in pca_cfg["bits"]:
            if k * bits > pca_cfg["max_bits"]:
                continue
            for clip in pca_cfg["clip_sigmas"]:
                codec = QuantizedPCA(num_components=k, bits=bits, clip_sigmas=clip).fit(
                    train, basis=basis
                )
                codes = codec.encode(test)
                point = {
                    "k": k,
                    "bits": bits,
                    "clip_sigmas": clip,
                    "mse": mse(codec.decode(codes), test),
                }
                for coding in codings:
                    data = encode_codes(
                        codes,
                        codebook_size=codec.codebook_size,
                        model_hash=codec.hash,
                        coding=coding,
                    )
                    if coding in ("packed", "zlib"):
                        back = decode_codes(data, expected_model_hash=codec.hash).codes
                        if not np.array_equal(back, codes):
                            raise RuntimeError(
                                f"PCA codes k={k} bits={bits} did not survive {coding}"
                            )
                    point[f"{coding}_bits_per_sample"] = 8 * len(data) / len(codes)
                points.append(point)
    return points


def lower_hull(rates: np.ndarray, dists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower convex hull of rate-distortion points, the decreasing part (Andrew's monotone chain).

    Every point on it is achievable by time-sharing the two codes at its ends.
    """
    order = np.lexsort((dists, rates))
    hull: list[tuple[float, float]] = []
    for r, d in zip(rates[order], dists[order], strict=True):
        while len(hull) >= 2:
            (r1, d1), (r2, d2) = hull[-2], hull[-1]
            if (r2 - r1) * (d - d1) - (d2 - d1) * (r - r1) <= 0:  # not a left turn: drop
                hull.pop()
            else:
                break
        hull.append((float(r), float(d)))
    best = int(np.argmin([d for _, d in hull]))  # beyond the minimum, more rate does not help
    hull = hull[: best + 1]
    return np.array([r for r, _ in hull]), np.array([d for _, d in hull])


def hull_distortion_at(hull_r: np.ndarray, hull_d: np.ndarray, rate: float) -> float | None:
    """The hull's distortion at ``rate`` (None below its lowest rate)."""
    if rate < hull_r[0]:
        return None
    if rate >= hull_r[-1]:
        return float(hull_d[-1])
    return float(np.interp(rate, hull_r, hull_d))


# ---------------------------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------------------------
def run_all(cfg: dict[str, Any], run: RunSession, data: ImageSplits) -> dict[str, Any]:
    """Train the rate points (one part each), code the test set, compare with the PCA baseline."""
    codings = list(cfg["codings"])
    logger = MetricLogger(run.dir)

    def rate_point(point: dict[str, Any], name: str) -> dict[str, Any]:
        point_cfg, part_dir = rate_point_config(cfg, point), run.part_dir(name)
        started = time.perf_counter()
        summary = train_rate_point(
            point_cfg, data, run.ctx, part_dir / "model", logger=logger, tag=name
        )
        seconds = time.perf_counter() - started
        print(
            f"compress: rate point {name}: best val MSE {summary['best_val_mse']:.5f} "
            f"({summary['epochs_run']} epochs, {seconds:.0f} s)"
        )
        save_config(point_cfg, part_dir / "config.yaml", header=f"compress rate point {name}")
        model = Autoencoder.from_pretrained(part_dir / "model").eval()
        record = code_vqvae(model, data.test, part_dir, name, codings)
        record.update({k: v for k, v in point.items() if k not in record})
        return {**record, "epochs_run": summary["epochs_run"], "train_seconds": seconds}

    records = []
    for point in cfg["rate_points"]:
        name = point_name(point)
        records.append(run.part(name, lambda point=point, name=name: rate_point(point, name)))
    logger.flush()

    pca = pca_points(data.train, data.test, cfg["pca"], codings)
    comparison: dict[str, Any] = {}
    for coding in codings:
        key = f"{coding}_bits_per_sample"
        hull_r, hull_d = lower_hull(
            np.array([p[key] for p in pca]), np.array([p["mse"] for p in pca])
        )
        rows = []
        for r in records:
            rate = r["files"][coding]["file_bits_per_sample"]
            pca_mse = hull_distortion_at(hull_r, hull_d, rate)
            within = [p["mse"] for p in pca if p[key] <= rate]
            rows.append(
                {
                    "name": r["name"],
                    "bits_per_sample": rate,
                    "vqvae_mse": r["mse"],
                    "pca_hull_mse": pca_mse,  # time-sharing two PCA codes on the hull
                    "pca_best_single_mse": min(within) if within else None,  # one (k, b, range)
                    "vqvae_better": None if pca_mse is None else r["mse"] < pca_mse,
                }
            )
        comparison[coding] = {
            "pca_hull": [[float(a), float(b)] for a, b in zip(hull_r, hull_d, strict=True)],
            "rate_points": rows,
            "vqvae_better_at": [row["bits_per_sample"] for row in rows if row["vqvae_better"]],
            "pca_better_at": [
                row["bits_per_sample"] for row in rows if row["vqvae_better"] is False
            ],
        }
    mean_image_mse = mse(data.train.mean(0, keepdim=True).expand_as(data.test), data.test)
    metrics = {
        "stage": "all",
        "dataset": cfg["vqvae"]["data"]["name"],
        "n_train": len(data.train),
        "n_test": len(data.test),
        "mean_image_mse": mean_image_mse,
        "vqvae": records,
        "comparison": comparison,
        "pca_points": pca,
        "train_seconds": sum(r["train_seconds"] for r in records),
    }
    save_figures(records, pca, comparison, data, cfg, run, mean_image_mse)
    return metrics


def _data_settings(cfg: dict[str, Any], model_dir: Path) -> tuple[dict[str, Any], int]:
    """Data block and seed of the run that saved ``model_dir`` (a vqvae run, or a rate point
    of a compress run: their ``config.yaml`` next to ``model/``), else this config's."""
    run_config = model_dir.parent / "config.yaml"
    if run_config.is_file():
        saved = load_config(run_config)
        if isinstance(saved.get("data"), dict) and "seed" in saved:
            print(f"compress: using the data settings of {run_config}")
            return saved["data"], saved["seed"]
    return cfg["vqvae"]["data"], cfg["seed"]


def _test_images(cfg: dict[str, Any], model_dir: Path) -> Tensor:
    data_cfg, seed = _data_settings(cfg, model_dir)
    return load_image_splits(data_cfg, seed=seed).test


def run_encode(cfg: dict[str, Any], run: RunSession) -> dict[str, Any]:
    """Write the test set's codes under the model in ``model_dir`` to ``codes``."""
    model_dir = Path(cfg["model_dir"])
    x_test = _test_images(cfg, model_dir)
    model = Autoencoder.from_pretrained(model_dir).eval()
    path = Path(cfg["codes"] or run.dir / "codes.sqc")
    info = encode_to_file(model, x_test, path, coding=cfg["coding"])
    print(
        f"compress: wrote {path}: {info.num_samples} test samples, {info.coding}, "
        f"{info.file_bytes} bytes = {info.file_bits_per_sample:.2f} bits per sample "
        f"(payload {info.payload_bits_per_sample:.2f})"
    )
    return {"stage": "encode", "codes": str(path), **info.as_dict()}


def run_decode(cfg: dict[str, Any], run: RunSession) -> dict[str, Any]:
    """Decode ``codes`` with the model in ``model_dir`` (which must have written them)."""
    model_dir = Path(cfg["model_dir"])
    path = Path(cfg["codes"] or run.dir / "codes.sqc")
    model = Autoencoder.from_pretrained(model_dir).eval()
    x_hat = decode_from_file(model, path)  # refuses another model's codes
    info = read_codes(path).info
    x_test = _test_images(cfg, model_dir)
    metrics: dict[str, Any] = {"stage": "decode", "codes": str(path), **info.as_dict()}
    if x_test.shape == x_hat.shape:
        metrics["test_mse"] = mse(x_hat, x_test)
    np.save(run.dir / "reconstructions.npy", x_hat.numpy())
    print(
        f"compress: decoded {info.num_samples} samples from {path} ({info.file_bits_per_sample:.2f} "
        f"bits per sample)"
        + (f", test MSE {metrics['test_mse']:.5f}" if "test_mse" in metrics else "")
        + f"; reconstructions in {run.dir / 'reconstructions.npy'}"
    )
    return metrics


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
STYLE = {
    "packed": ("o", "-"),
    "adaptive": ("s", "--"),
    "arithmetic": ("D", "-."),
    "zlib": ("^", ":"),
}


def save_figures(
    records: list[dict[str, Any]],
    pca: list[dict[str, Any]],
    comparison: dict[str, Any],
    data: ImageSplits,
    cfg: dict[str, Any],
    run: RunSession,
    mean_image_mse: float,
) -> None:
    """figures/rate_distortion.png and figures/reconstructions.png (images decoded from the
    rate points' first code files)."""
    out_dir = run.dir / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.8))
    for coding in comparison:
        marker, line = STYLE[coding]
        if coding not in cfg["figure_codings"]:
            continue
        rates = [r["files"][coding]["file_bits_per_sample"] for r in records]
        ax.plot(
            rates,
            [r["mse"] for r in records],
            marker=marker,
            ls="none",
            color="tab:red",
            label=f"VQ-VAE, {coding}",
        )
        hull = np.array(comparison[coding]["pca_hull"])
        ax.plot(hull[:, 0], hull[:, 1], ls=line, color="tab:blue", label=f"PCA hull, {coding}")
    first = cfg["figure_codings"][0]
    ax.scatter(
        [p[f"{first}_bits_per_sample"] for p in pca],
        [p["mse"] for p in pca],
        s=4,
        color="tab:blue",
        alpha=0.15,
        label=f"PCA (k, b, range) grid, {first}",
    )
    ax.axhline(mean_image_mse, color="grey", lw=0.8, label="mean image (0 bits)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("bits per image (whole file: header, table, payload)")
    ax.set_ylabel("test MSE per pixel")
    ax.set_title(f"rate-distortion on the {cfg['vqvae']['data']['name']} test set", fontsize=10)
    top = max(r["files"][c]["file_bits_per_sample"] for r in records for c in cfg["figure_codings"])
    ax.set_xlim(left=1, right=top * 2)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "rate_distortion.png", dpi=120)
    plt.close(fig)

    # test images, then each rate point's images decoded from its first code file
    n = min(10, len(data.test))
    rows: list[tuple[str, Tensor]] = [("test", data.test[:n])]
    for r in records:
        part_dir = run.part_dir(r["name"])
        first = next(iter(r["files"].values()))
        decoded = decode_from_file(
            Autoencoder.from_pretrained(part_dir / "model"), part_dir / Path(first["path"]).name
        )
        rows.append((f"{first['file_bits_per_sample']:.0f} bits", decoded[:n]))
    fig, axes = plt.subplots(len(rows), 1, figsize=(0.55 * n + 1.2, 0.62 * len(rows)))
    for ax, (label, images) in zip(axes, rows, strict=True):
        if images.dim() == 4 and images.shape[1] > 1:
            images = images.mean(1)  # colour images drawn in grey
        show_images(ax, images, ncol=n)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "reconstructions.png", dpi=120)
    plt.close(fig)


def main(cfg: dict[str, Any]) -> dict[str, Any]:
    require_single_process("compress")
    validate(cfg)
    data = None
    if cfg["stage"] == "all":
        data = load_image_splits(cfg["vqvae"]["data"], seed=cfg["seed"])
        check_data(cfg, data.train)
    threads = torch.get_num_threads()
    if cfg["vqvae"]["train"]["threads"] > 0:
        torch.set_num_threads(cfg["vqvae"]["train"]["threads"])  # see recipes/vqvae.py
    try:
        ctx = init_distributed(device_preference=cfg["device"])
        with RunSession(cfg, recipe="compress", ctx=ctx, neutral=NEUTRAL_KEYS) as run:
            if data is None:
                stage = run_encode if cfg["stage"] == "encode" else run_decode
                return run.finish(stage(cfg, run))
            metrics = run_all(cfg, run, data)
            for coding, comp in metrics["comparison"].items():
                print(f"compress ({coding}): bits/image, VQ-VAE MSE, PCA-hull MSE at that rate")
                for row in comp["rate_points"]:
                    pca = (
                        "n/a (below the PCA grid)"
                        if row["pca_hull_mse"] is None
                        else f"{row['pca_hull_mse']:.5f}"
                    )
                    print(f"  {row['bits_per_sample']:8.2f}  {row['vqvae_mse']:.5f}  {pca}")
            return run.finish(metrics)
    finally:
        torch.set_num_threads(threads)
