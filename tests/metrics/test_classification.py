"""Accuracy helpers: argmax scoring, index predictions, batching, eval mode, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqae.metrics.classification import accuracy, classifier_accuracy


def test_accuracy_from_scores_and_from_indices() -> None:
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0], [0.0, 1.0, 5.0], [9.0, 0.0, 0.0]])
    labels = torch.tensor([0, 1, 0, 0])
    assert accuracy(logits, labels) == pytest.approx(0.75)
    assert accuracy(logits.argmax(1), labels) == pytest.approx(0.75)
    assert accuracy(logits.softmax(1), labels) == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("scores", "labels", "error", "match"),
    [
        (torch.zeros(3, 4), torch.zeros(2, dtype=torch.long), ValueError, "2 labels for 3"),
        (torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), ValueError, "empty"),
        (torch.zeros(3, 4), torch.zeros(3), TypeError, "integer class indices"),
        (torch.zeros(3), torch.zeros(3, dtype=torch.long), TypeError, "predicted class indices"),
        (torch.zeros(3, 4, 2), torch.zeros(3, dtype=torch.long), ValueError, r"\(N, C\)"),
        (torch.zeros(3, 4), torch.zeros(3, 1, dtype=torch.long), ValueError, r"shape \(N,\)"),
    ],
)
def test_accuracy_rejects_bad_input(scores, labels, error, match) -> None:
    with pytest.raises(error, match=match):
        accuracy(scores, labels)


def test_classifier_accuracy_batches_and_restores_mode() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    x, y = torch.randn(37, 5), torch.randint(0, 3, (37,))
    model.train()
    with torch.no_grad():
        model.eval()
        expected = accuracy(model(x), y)
        model.train()
    # batching does not change the answer, dropout is off (eval mode), the mode comes back
    assert classifier_accuracy(model, x, y, batch_size=4) == pytest.approx(expected)
    assert classifier_accuracy(model, x, y, batch_size=1000) == pytest.approx(expected)
    assert model.training


def test_classifier_accuracy_perfect_and_chance_classifiers() -> None:
    y = torch.arange(10) % 4

    def oracle(xb: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(xb[:, 0].long(), 4).float()

    x = y[:, None].float()
    assert classifier_accuracy(oracle, x, y, batch_size=3) == 1.0
    assert classifier_accuracy(lambda xb: torch.zeros(len(xb), 4), x, y) == pytest.approx(0.3)


def test_classifier_accuracy_rejects_bad_model_output_and_batch_size() -> None:
    x, y = torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="class scores"):
        classifier_accuracy(lambda xb: xb.sum(1), x, y)
    with pytest.raises(ValueError, match="batch_size"):
        classifier_accuracy(lambda xb: xb, x, y, batch_size=0)
    with pytest.raises(ValueError, match="3 labels for 4"):
        classifier_accuracy(lambda xb: xb, x, y[:3])
