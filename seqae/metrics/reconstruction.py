"""Reconstruction error of an autoencoder over a dataset.

    >>> err = reconstruction_error(model, test_loader)          # uses model.reconstruct
    >>> err.mean                                                # MSE per element (float)
    >>> err.per_example                                         # (N,) squared error summed per example

Also the two helpers the other metrics share: :func:`evaluating` (eval mode + no grad, mode
restored afterwards) and :func:`iter_batches` (tensor or DataLoader -> batches of ``x``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

__all__ = [
    "ReconstructionError",
    "evaluating",
    "iter_batches",
    "model_device",
    "reconstruction_error",
]

ErrorKind = Literal["mse", "mae", "bce"]


@contextlib.contextmanager
def evaluating(model: Any) -> Iterator[None]:
    """Run a block with ``model`` in eval mode and gradients off; restore the previous mode.

    Args:
        model: Any object; only an :class:`torch.nn.Module` has its mode switched.
    """
    was_training = isinstance(model, nn.Module) and model.training
    if isinstance(model, nn.Module):
        model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if was_training:
            model.train()


def model_device(model: Any) -> torch.device | None:
    """The device of the first parameter or buffer of an ``nn.Module``; ``None`` otherwise."""
    if isinstance(model, nn.Module):
        for tensor in model.parameters():
            return tensor.device
        for tensor in model.buffers():
            return tensor.device
    return None


def iter_batches(data: Tensor | Iterable[Any], *, batch_size: int = 256) -> Iterator[Tensor]:
    """Yield tensors of examples from a tensor or from an iterable of batches.

    Args:
        data: A tensor ``(N, ...)``, split into batches along axis 0; or an iterable (e.g. a
            DataLoader) whose batches are tensors, tuples/lists whose first element is ``x``
            (as seqae datasets return), or dicts with an ``"x"`` entry.
        batch_size: Batch size used to split a tensor.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(data, Tensor):
        if data.dim() == 0:
            raise ValueError("expected a batch of examples (N, ...), got a scalar tensor")
        yield from data.split(batch_size)
        return
    for i, batch in enumerate(data):
        if isinstance(batch, Tensor):
            yield batch
        elif isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
            yield batch[0]
        elif isinstance(batch, dict) and isinstance(batch.get("x"), Tensor):
            yield batch["x"]
        else:
            raise TypeError(
                f"batch {i}: expected a tensor, a tuple/list starting with a tensor, or a dict "
                f"with key 'x'; got {type(batch).__name__}"
            )


class ReconstructionError(NamedTuple):
    """Result of :func:`reconstruction_error`.

    Attributes:
        mean: The error averaged over every element of every example (e.g. the MSE).
        per_example: The error summed over each example's elements, ``(N,)`` float64 on CPU.
        num_elements: Elements per example (``mean == per_example.sum() / (N * num_elements)``).
    """

    mean: float
    per_example: Tensor
    num_elements: int


def _reconstruct(model_or_fn: Any, x: Tensor) -> Tensor:
    fn: Callable[[Tensor], Any]
    if callable(getattr(model_or_fn, "reconstruct", None)):
        fn = model_or_fn.reconstruct
    elif callable(model_or_fn):
        fn = model_or_fn
    else:
        raise TypeError(
            f"expected a model with .reconstruct(x) or a function x -> x_hat, got "
            f"{type(model_or_fn).__name__}"
        )
    out = fn(x)
    if not isinstance(out, Tensor) and isinstance(getattr(out, "x_hat", None), Tensor):
        out = out.x_hat
    if not isinstance(out, Tensor):
        raise TypeError(
            f"the reconstruction must be a tensor (or have a tensor .x_hat), got {type(out).__name__}"
        )
    if out.shape != x.shape:
        raise ValueError(
            f"reconstruction has shape {tuple(out.shape)} but the input has shape {tuple(x.shape)}"
        )
    return out


def reconstruction_error(
    model_or_fn: Any,
    data: Tensor | Iterable[Any],
    *,
    kind: ErrorKind = "mse",
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> ReconstructionError:
    """Average reconstruction error of a model over a dataset, computed without gradients.

    An ``nn.Module`` is put in eval mode for the call and returned to its previous mode.

    Args:
        model_or_fn: A model with ``reconstruct(x) -> x_hat`` (seqae models), or any function
            ``x -> x_hat``. A returned object with a tensor ``x_hat`` attribute is accepted.
            ``x_hat`` must have ``x``'s shape.
        data: A tensor ``(N, ...)`` or an iterable of batches (see :func:`iter_batches`).
        kind: ``"mse"``: squared error; ``"mae"``: absolute error; ``"bce"``: binary
            cross-entropy in nats, with ``x`` in ``[0, 1]`` and ``x_hat`` probabilities (not
            logits; clamped to ``[1e-7, 1 - 1e-7]``).
        batch_size: Batch size used when ``data`` is a tensor.
        device: Where to compute; by default the model's device (an ``nn.Module``), else the
            data's.

    Returns:
        :class:`ReconstructionError` with the per-element mean and per-example sums.
    """
    if kind not in ("mse", "mae", "bce"):
        raise ValueError(f"unknown kind {kind!r}; expected 'mse', 'mae' or 'bce'")
    target_device = torch.device(device) if device is not None else model_device(model_or_fn)
    sums: list[Tensor] = []
    num_elements: int | None = None
    with evaluating(model_or_fn):
        for x in iter_batches(data, batch_size=batch_size):
            if target_device is not None:
                x = x.to(target_device)
            x = x.float() if not x.is_floating_point() else x
            x_hat = _reconstruct(model_or_fn, x)
            if kind == "mse":
                err = (x_hat - x).pow(2)
            elif kind == "mae":
                err = (x_hat - x).abs()
            else:
                p = x_hat.clamp(1e-7, 1.0 - 1e-7)
                err = -(x * p.log() + (1.0 - x) * (1.0 - p).log())
            per_example = err.reshape(err.shape[0], -1).double().sum(dim=1)
            if num_elements is None:
                num_elements = err[0].numel() if len(err) else None
            elif len(err) and err[0].numel() != num_elements:
                raise ValueError(
                    f"examples differ in size: {err[0].numel()} elements after {num_elements}"
                )
            sums.append(per_example.cpu())
    if num_elements is None:
        raise ValueError("reconstruction_error: no examples in data")
    per_example = torch.cat(sums)
    mean = float(per_example.sum() / (len(per_example) * num_elements))
    return ReconstructionError(mean=mean, per_example=per_example, num_elements=num_elements)
