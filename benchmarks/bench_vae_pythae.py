"""VAE training throughput on scikit-learn's 8x8 digits: seqae against pythae's TrainingPipeline.

Run by hand (never by the tests); both sides are measured in the same process, alternating:

    python benchmarks/bench_vae_pythae.py                      # CPU, 20 epochs, 3 repeats
    python benchmarks/bench_vae_pythae.py --threads 1 --repeats 7   # steadier on a busy machine
    python benchmarks/bench_vae_pythae.py --device cuda --epochs 50 --latent-dim 16
    python benchmarks/bench_vae_pythae.py --compile     # also seqae with torch.compile

Needs the peer: ``pip install -e '.[bench]'`` (installs pythae).

What is compared (see benchmarks/README.md for the full protocol):

- the same model on both sides: encoder 64-256-128 (Linear+ReLU twice), linear heads 128 -> z for
  mu and log-variance (seqae's Gaussian bottleneck holds both heads in one Linear(128, 2z), the
  same weights and the same default initialisation as two Linear(128, z)), decoder z-128-256-64
  with ReLU hidden layers and a linear output, as pythae's VAE uses a custom decoder's output
  as-is for its 'mse' loss;
- the same objective: pythae's 'mse' VAE loss is ``0.5 * sum_pixels (x_hat - x)^2 + KL``,
  averaged over the batch. seqae's unit-variance Gaussian likelihood (``sigma=1``) gives the same
  value plus the constant ``0.5 * 64 * log(2 pi)``, so the gradients are identical; the printed
  losses drop that constant so both columns are on pythae's scale;
- the same data (seqae's seeded stratified split: train for training, val for the per-epoch
  evaluation that pythae runs when given ``eval_data``; ``--no-eval`` gives neither side one),
  batch size, Adam learning rate, epochs, device and torch thread count;
- the optimizer: ``torch.optim.Adam`` with torch's default implementation on both sides
  (``--fused-adam``: ``fused=True`` on both, pythae through its ``optimizer_params``);
- the loops: pythae's trainer (DataLoader over its per-item dict dataset, ``loss.item()`` and a
  NaN test per step, a tqdm bar, a best-model copy); seqae's loop as its ``vae_digits`` recipe
  writes it: ``seqae.training.make_loader`` over the ``DigitsDataset`` split with
  ``shuffle=True`` and ``set_epoch`` each epoch (a dataset with a batched read, so each batch
  is one gather; ``--batching dataloader``: a torch ``DataLoader`` over a ``TensorDataset``
  instead; ``--batching index``: the data on the device and one ``randperm`` per epoch), the
  recipes' per-step ``check_finite(loss)`` guard, losses summed on the device and read once per
  epoch;
- the timed region: pythae's ``TrainingPipeline(...)(train, eval)`` call, wall clock (it also
  checks the data, runs a sanity forward, keeps a best-model copy and saves the final model);
  seqae's loop from building the optimizer and loaders to ``save_pretrained`` of the final model.
  Model construction is outside the timed region on both sides.

samples/s = epochs * n_train / seconds. The ratio printed is seqae / pythae (target >= 1.5x).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import logging
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from seqae.core.model import Autoencoder
from seqae.data.digits import DigitsSplits, load_digits_splits
from seqae.training import (
    DistributedContext,
    check_finite,
    make_loader,
    maybe_compile,
    set_epoch,
)

PIXELS = 64
GAUSSIAN_CONST = 0.5 * PIXELS * math.log(2.0 * math.pi)  # seqae's NLL minus pythae's 'mse' loss
TARGET_RATIO = 1.5


@dataclass
class RunResult:
    """One timed training run."""

    seconds: float  # wall clock
    cpu_seconds: float  # CPU time of this process over the same region (steadier when busy)
    train_loss: float  # last epoch, mean over batches of (0.5 * SSE + KL) per example
    eval_loss: float | None


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def load_data(seed: int) -> DigitsSplits:
    """seqae's seeded stratified digits split, pixels / 16 (no dequantisation)."""
    return load_digits_splits(val_fraction=0.1, test_fraction=0.2, seed=seed)


def as_tensor(dataset) -> Tensor:
    """A split's images as one float32 ``(N, 64)`` tensor in [0, 1] (what pythae is given)."""
    return dataset.tensors()[0].float().contiguous()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------------------
# seqae side: the loop a recipe writes
# --------------------------------------------------------------------------------------------
def seqae_spec(latent_dim: int) -> dict:
    return {
        "encoder": {
            "name": "mlp",
            "in_dim": PIXELS,
            "hidden": [256],
            "out_dim": 128,
            "out_activation": "relu",
        },
        "bottleneck": {"name": "gaussian", "in_dim": 128, "latent_dim": latent_dim},
        "decoder": {"name": "mlp", "in_dim": latent_dim, "hidden": [128, 256], "out_dim": PIXELS},
        "likelihood": "gaussian",
        "sigma": 1.0,
    }


def _seqae_batches(
    data: DigitsSplits,
    split: str,
    *,
    batch_size: int,
    shuffle: bool,
    batching: str,
    device: torch.device,
    seed: int,
) -> Callable[[int], Iterator[Tensor]]:
    """``epoch -> that epoch's batches of images``, read the way ``--batching`` says."""
    dataset = getattr(data, split)
    if batching == "loader":  # the vae_digits recipe's loader
        loader = make_loader(
            dataset, batch_size=batch_size, shuffle=shuffle, seed=seed, ctx=DistributedContext()
        )

        def epoch_loader(epoch: int) -> Iterator[Tensor]:
            set_epoch(loader, epoch)
            dataset.set_epoch(epoch)  # the recipe's dequantisation key; a no-op here
            for x, _ in loader:
                yield x.to(device, non_blocking=True)

        return epoch_loader

    x = as_tensor(dataset)
    if batching == "dataloader":  # a plain torch DataLoader: item reads and collation
        plain = DataLoader(TensorDataset(x), batch_size=batch_size, shuffle=shuffle)

        def epoch_dataloader(epoch: int) -> Iterator[Tensor]:
            for (xb,) in plain:
                yield xb.to(device, non_blocking=True)

        return epoch_dataloader

    x_dev = x.to(device)

    def epoch_index(epoch: int) -> Iterator[Tensor]:
        if not shuffle:
            yield from x_dev.split(batch_size)
            return
        for idx in torch.randperm(len(x_dev), device=device).split(batch_size):
            yield x_dev[idx]

    return epoch_index


def run_seqae(
    data: DigitsSplits,
    *,
    evaluate: bool,
    latent_dim: int,
    epochs: int,
    batch_size: int,
    lr: float,
    device: torch.device,
    seed: int,
    batching: str,
    fused_adam: bool,
    compile: bool = False,
) -> RunResult:
    torch.manual_seed(seed)
    model = Autoencoder.from_config(seqae_spec(latent_dim)).to(device)
    _sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    # train.compile: compiling happens inside the timed region, on the first batches
    forward = maybe_compile(model, compile)

    optimizer = torch.optim.Adam(model.parameters(), lr=lr, **_adam_flags(fused_adam))
    common = dict(batch_size=batch_size, batching=batching, device=device, seed=seed)
    train_batches = _seqae_batches(data, "train", shuffle=True, **common)
    val_batches = _seqae_batches(data, "val", shuffle=False, **common) if evaluate else None
    train_loss = eval_loss = math.nan
    step = 0
    for epoch in range(epochs):
        model.train()
        total, batches = torch.zeros((), device=device), 0
        for x in train_batches(epoch):
            out = forward(x)
            loss = model.reconstruction_loss(out.x_hat, x) + out.loss  # nats per example
            check_finite(loss, step=step)  # the recipes' NaN guard (pythae: loss.item() per step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
            batches += 1
            step += 1
        train_loss = total.item() / batches - GAUSSIAN_CONST
        if val_batches is not None:
            model.eval()
            total, batches = torch.zeros((), device=device), 0
            with torch.no_grad():
                for x in val_batches(epoch):
                    out = model(x)
                    total += model.reconstruction_loss(out.x_hat, x) + out.loss
                    batches += 1
            eval_loss = total.item() / batches - GAUSSIAN_CONST
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
    _sync(device)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return RunResult(seconds, cpu, train_loss, eval_loss if evaluate else None)


def _adam_flags(fused: bool) -> dict:
    """torch's default Adam implementation unless ``--fused-adam`` (then on both sides)."""
    return {"fused": True} if fused else {}


# --------------------------------------------------------------------------------------------
# pythae side: its VAE with the same networks, trained by its TrainingPipeline
# --------------------------------------------------------------------------------------------
def build_pythae_vae(latent_dim: int):
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            BaseEncoder.__init__(self)
            self.net = nn.Sequential(
                nn.Linear(PIXELS, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU()
            )
            self.embedding = nn.Linear(128, latent_dim)
            self.log_var = nn.Linear(128, latent_dim)

        def forward(self, x: Tensor) -> ModelOutput:
            h = self.net(x.reshape(x.shape[0], -1))
            return ModelOutput(embedding=self.embedding(h), log_covariance=self.log_var(h))

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            BaseDecoder.__init__(self)
            self.net = nn.Sequential(
                nn.Linear(latent_dim, 128),
                nn.ReLU(),
                nn.Linear(128, 256),
                nn.ReLU(),
                nn.Linear(256, PIXELS),
            )

        def forward(self, z: Tensor) -> ModelOutput:
            return ModelOutput(reconstruction=self.net(z))

    config = VAEConfig(input_dim=(PIXELS,), latent_dim=latent_dim, reconstruction_loss="mse")
    return VAE(config, encoder=Encoder(), decoder=Decoder())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence pythae's INFO logging and its tqdm progress bars (which write to stderr)."""
    logging.disable(logging.INFO)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


def run_pythae(
    x_train: Tensor,
    x_val: Tensor | None,
    *,
    latent_dim: int,
    epochs: int,
    batch_size: int,
    lr: float,
    device: torch.device,
    seed: int,
    fused_adam: bool,
) -> RunResult:
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainingCallback

    class LastLosses(TrainingCallback):
        """Records the epoch losses the trainer logs (it does not return them)."""

        def __init__(self) -> None:
            self.train: float = math.nan
            self.eval: float | None = None

        def on_log(self, training_config, logs, **kwargs) -> None:
            self.train = float(logs.get("train_epoch_loss", math.nan))
            if "eval_epoch_loss" in logs:
                self.eval = float(logs["eval_epoch_loss"])

    torch.manual_seed(seed)
    model = build_pythae_vae(latent_dim)
    losses = LastLosses()
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        config = BaseTrainerConfig(
            output_dir=tmp,
            per_device_train_batch_size=batch_size,
            per_device_eval_batch_size=batch_size,
            num_epochs=epochs,
            learning_rate=lr,
            optimizer_cls="Adam",
            optimizer_params=_adam_flags(fused_adam) or None,
            steps_saving=None,
            steps_predict=None,
            seed=seed,
            no_cuda=device.type != "cuda",
        )
        pipeline = TrainingPipeline(model=model, training_config=config)
        _sync(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        pipeline(train_data=x_train, eval_data=x_val, callbacks=[losses])
        _sync(device)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return RunResult(seconds, cpu, losses.train, losses.eval)


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "VAE training throughput (samples/s) on sklearn digits: seqae vs pythae's "
            "TrainingPipeline, same model, data and objective. Prints the ratio seqae/pythae."
        )
    )
    parser.add_argument("--epochs", type=int, default=20, help="epochs per run (both sides)")
    parser.add_argument("--latent-dim", type=int, default=8, help="latent size z")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs per side, alternating; median shown"
    )
    parser.add_argument(
        "--warmup-epochs",
        type=int,
        default=1,
        help="length of one untimed warm-up run per side before timing (0: none)",
    )
    parser.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda"], help="cuda only if available"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads for both sides (default: torch's current setting)",
    )
    parser.add_argument(
        "--no-eval",
        action="store_true",
        help="no validation pass on either side (by default both evaluate on the same split)",
    )
    parser.add_argument(
        "--batching",
        default="loader",
        choices=["loader", "dataloader", "index"],
        help=(
            "seqae's batching: 'loader' = seqae.training.make_loader over the DigitsDataset "
            "split, as the vae_digits recipe does (default; batches read with one gather); "
            "'dataloader' = torch DataLoader(TensorDataset, shuffle=True) (item reads + "
            "collation); 'index' = data kept on the device, one randperm per epoch"
        ),
    )
    parser.add_argument(
        "--fused-adam",
        action="store_true",
        help="Adam(fused=True) on BOTH sides (pythae via optimizer_params); default: torch's "
        "default Adam implementation on both",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time seqae with torch.compile of the model (the recipes' train.compile)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("epochs", "latent_dim", "batch_size", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda asked for, but torch.cuda.is_available() is False")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import pythae  # noqa: F401
    except ImportError:
        print(
            "pythae is not installed; this benchmark compares against it. "
            "Install the benchmark extras: pip install -e '.[bench]'",
            file=sys.stderr,
        )
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = load_data(args.seed)
    x_train = as_tensor(data.train)
    x_val = None if args.no_eval else as_tensor(data.val)
    common = dict(
        latent_dim=args.latent_dim,
        batch_size=args.batch_size,
        lr=args.lr,
        device=device,
        fused_adam=args.fused_adam,
    )
    sides: dict[str, Callable[..., RunResult]] = {
        "seqae": lambda **kw: run_seqae(
            data, evaluate=not args.no_eval, batching=args.batching, **common, **kw
        ),
        "pythae": lambda **kw: run_pythae(x_train, x_val, **common, **kw),
    }
    if args.compile:  # the recipes' train.compile=true: torch.compile of the model
        sides["seqae+compile"] = lambda **kw: run_seqae(
            data, evaluate=not args.no_eval, batching=args.batching, compile=True, **common, **kw
        )

    print(
        f"VAE on sklearn digits: n_train={len(x_train)}, n_val={0 if x_val is None else len(x_val)}, "
        f"z={args.latent_dim}, batch={args.batch_size}, Adam lr={args.lr}, epochs={args.epochs}, "
        f"repeats={args.repeats}, device={device}, threads={torch.get_num_threads()}, "
        f"seqae batching={args.batching}, "
        f"Adam {'fused=True' if args.fused_adam else 'default implementation'} (both sides), "
        f"torch {torch.__version__}, "
        f"pythae {importlib.metadata.version('pythae')}"
    )
    if args.warmup_epochs > 0:
        for side in sides.values():
            side(epochs=args.warmup_epochs, seed=args.seed)

    results: dict[str, list[RunResult]] = {name: [] for name in sides}
    order = list(sides)
    for r in range(args.repeats):
        for name in order if r % 2 == 0 else order[::-1]:
            results[name].append(sides[name](epochs=args.epochs, seed=args.seed + r))

    samples = args.epochs * len(x_train)
    print()
    print(
        f"{'side':<14}{'seconds':>10}{'samples/s':>12}{'cpu s':>8}{'train loss':>12}"
        f"{'eval loss':>11}   runs (s)"
    )
    speed: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for name, runs in results.items():
        median_run = sorted(runs, key=lambda run: run.seconds)[len(runs) // 2]
        seconds = statistics.median(run.seconds for run in runs)
        speed[name] = samples / seconds
        cpu[name] = statistics.median(run.cpu_seconds for run in runs)
        eval_text = "-" if median_run.eval_loss is None else f"{median_run.eval_loss:.3f}"
        print(
            f"{name:<14}{seconds:>10.3f}{speed[name]:>12.0f}{cpu[name]:>8.3f}"
            f"{median_run.train_loss:>12.3f}{eval_text:>11}   "
            f"{', '.join(f'{run.seconds:.3f}' for run in runs)}"
        )
    print("(losses: last epoch, 0.5 * sum of squared errors + KL, nats per example)")
    best = {name: min(run.seconds for run in runs) for name, runs in results.items()}
    print(
        f"(fastest runs only: seqae/pythae {best['pythae'] / best['seqae']:.2f}x; median CPU "
        f"time: seqae/pythae {cpu['pythae'] / cpu['seqae']:.2f}x; on a busy machine, prefer "
        "--threads 1 and more --repeats)"
    )
    ratio = speed["seqae"] / speed["pythae"]
    print(f"ratio seqae/pythae samples/s: {ratio:.2f}x (target >= {TARGET_RATIO}x)")
    if "seqae+compile" in speed:
        ratio = speed["seqae+compile"] / speed["pythae"]
        print(
            f"ratio seqae+compile/pythae samples/s: {ratio:.2f}x (compiling included in each "
            f"run's time; fastest run {best['pythae'] / best['seqae+compile']:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
