"""Classification accuracy, for classifiers built on autoencoder features or codes.

    >>> accuracy(logits, labels)                       # fraction of argmax(logits) == labels
    >>> classifier_accuracy(model, x_test, y_test)     # eval mode, no grad, batched

Used to score the supervised fine-tuning of layer-wise pretrained networks (Hinton &
Salakhutdinov 2006; Bengio et al. 2007; Vincent et al. 2010), where the test accuracy of a
network initialised from a stack of autoencoders is compared with that of the same network from
random initialisation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from seqae.metrics.reconstruction import evaluating, model_device

__all__ = ["accuracy", "classifier_accuracy"]


def _check_labels(labels: Tensor, n: int, *, who: str) -> Tensor:
    if not isinstance(labels, Tensor):
        raise TypeError(f"{who}: labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dim() != 1:
        raise ValueError(f"{who}: labels must have shape (N,), got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"{who}: labels must be integer class indices, got dtype {labels.dtype}")
    if labels.shape[0] != n:
        raise ValueError(f"{who}: {labels.shape[0]} labels for {n} predictions")
    if n == 0:
        raise ValueError(f"{who}: no examples; accuracy of an empty set is undefined")
    return labels


def accuracy(scores: Tensor, labels: Tensor) -> float:
    """Fraction of examples whose predicted class equals the label.

    Args:
        scores: Either class scores ``(N, C)`` (logits or probabilities; the prediction is the
            argmax over ``C``) or predicted class indices ``(N,)`` (integers).
        labels: True class indices ``(N,)`` (integers).

    Returns:
        Accuracy in ``[0, 1]`` as a Python float.

    Raises:
        ValueError: Shapes do not match, or there are no examples.
        TypeError: Labels (or index predictions) are not integers.
    """
    if not isinstance(scores, Tensor):
        raise TypeError(f"accuracy: scores must be a torch.Tensor, got {type(scores).__name__}")
    if scores.dim() == 2:
        if scores.shape[1] < 1:
            raise ValueError(
                f"accuracy: scores (N, C) need at least one class, got {tuple(scores.shape)}"
            )
        predicted = scores.argmax(dim=1)
    elif scores.dim() == 1:
        if scores.is_floating_point():
            raise TypeError(
                "accuracy: 1-D scores must be predicted class indices (integers); pass class "
                "scores as (N, C)"
            )
        predicted = scores
    else:
        raise ValueError(
            f"accuracy: scores must be (N, C) class scores or (N,) predicted classes, got {tuple(scores.shape)}"
        )
    labels = _check_labels(labels, predicted.shape[0], who="accuracy")
    return (predicted == labels.to(predicted.device)).float().mean().item()


def classifier_accuracy(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    labels: Tensor,
    *,
    batch_size: int = 1024,
) -> float:
    """Accuracy of a classifier over a whole set, computed in eval mode without gradients.

    Args:
        model: Maps a batch ``(B, ...)`` to class scores ``(B, C)``. An ``nn.Module`` is put in
            eval mode for the evaluation (dropout off, batch norm frozen) and its previous mode
            restored afterwards; inputs are moved to the module's device.
        x: Inputs ``(N, ...)``.
        labels: True class indices ``(N,)``.
        batch_size: Examples scored per forward pass.

    Returns:
        Accuracy in ``[0, 1]`` as a Python float.
    """
    if batch_size < 1:
        raise ValueError(f"classifier_accuracy: batch_size must be >= 1, got {batch_size}")
    if not isinstance(x, Tensor) or x.dim() == 0:
        raise ValueError("classifier_accuracy: x must be a tensor of examples (N, ...)")
    labels = _check_labels(labels, x.shape[0], who="classifier_accuracy")
    device = model_device(model)
    correct = 0
    with evaluating(model):
        for xb, yb in zip(x.split(batch_size), labels.split(batch_size), strict=True):
            if device is not None:
                xb, yb = xb.to(device), yb.to(device)
            scores = model(xb)
            if scores.dim() != 2 or scores.shape[0] != xb.shape[0]:
                raise ValueError(
                    f"classifier_accuracy: the model must return class scores (B, C) for a batch of "
                    f"{xb.shape[0]}, got {tuple(scores.shape)}"
                )
            correct += (scores.argmax(dim=1) == yb).sum().item()
    return correct / x.shape[0]
