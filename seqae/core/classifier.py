"""Autoencoders whose discrete code is a class: a one-hot code (``K`` clusters) and one bit
(a two-way split).

Both are encoder -> code bottleneck (optionally next to a small continuous "style" code) ->
decoder, trained without labels; the code of an image, read in eval mode, is its cluster:

- :class:`OneHotClassifier`: a one-hot code of ``num_categories`` classes
  (:class:`~seqae.core.onehot.OneHotBottleneck`, straight-through Gumbel-softmax, Jang et al.
  2017, arXiv 1611.01144) next to the continuous code of GMVAE (Dilokthanakul et al. 2016,
  arXiv 1611.02648). ``classify(x)`` gives each image's category; the ``onehot_classify``
  recipe trains it to cluster digits.
- :class:`BitAutoencoder`: one bit (:class:`~seqae.core.binary.BinaryBottleneck` with
  ``code_dim=1``, Bengio et al. 2013, arXiv 1308.3432). ``split(x)`` sends each image to side
  0 or 1; the ``binary_tree`` recipe grows a tree of them.

Both save in the one saved-model format (:mod:`seqae.core.saving`), so any folder they wrote
loads through ``seqae.load_pretrained``:

    >>> model = OneHotClassifier(hidden=[512, 256], num_categories=10, style_dim=8)
    >>> model.save_pretrained("runs/onehot_classify/model")
    >>> same = seqae.load_pretrained("runs/onehot_classify/model")
    >>> codes = same.classify(x)                           # (B,) in 0..9
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from seqae.core.binary import BinaryBottleneck
from seqae.core.nets import MLP
from seqae.core.onehot import OneHotBottleneck
from seqae.core.saving import (
    SavedByConfig,
)

__all__ = ["OneHotClassifier", "BitAutoencoder"]


def _check_sizes(who: str, in_dim: int, hidden: Sequence[int], style_dim: int) -> list[int]:
    if not isinstance(in_dim, int) or in_dim < 1:
        raise ValueError(f"{who}: in_dim must be a positive int, got {in_dim!r}")
    hidden = list(hidden)
    if not hidden or any(not isinstance(h, int) or h < 1 for h in hidden):
        raise ValueError(f"{who}: hidden must list positive layer sizes, got {hidden!r}")
    if not isinstance(style_dim, int) or style_dim < 0:
        raise ValueError(f"{who}: style_dim must be an int >= 0, got {style_dim!r}")
    return hidden


class OneHotClassifier(SavedByConfig, nn.Module):
    """Encoder -> one-hot code (+ continuous style code) -> decoder; the code is the class.

    Args:
        in_dim: Input features (64 for 8x8 images, flattened).
        hidden: Encoder layer sizes after the input (ReLU); the decoder mirrors them.
        num_categories: Categories of the one-hot code (the clusters).
        style_dim: Size of a deterministic continuous code passed to the decoder next to the
            one-hot code (GMVAE's continuous part, arXiv 1611.02648); 0 for none.
        hard: Straight-through (hard) Gumbel-softmax in training (arXiv 1611.01144, sec. 2.2).
            The temperature is ``model.bottleneck.temperature``, a plain attribute a schedule
            sets between steps.
    """

    model_type: ClassVar[str] = "onehot_classifier"

    def __init__(
        self,
        *,
        in_dim: int = 64,
        hidden: Sequence[int] = (512, 256),
        num_categories: int = 10,
        style_dim: int = 0,
        hard: bool = True,
    ) -> None:
        super().__init__()
        hidden = _check_sizes("OneHotClassifier", in_dim, hidden, style_dim)
        self.in_dim, self.hidden, self.style_dim, self.hard = in_dim, hidden, style_dim, hard
        *inner, last = hidden
        self.encoder = MLP(in_dim=in_dim, hidden=inner, out_dim=last, out_activation="relu")
        # The per-example KL to a uniform prior would push every q(y|x) towards uniform, against
        # confident classes; a training objective that wants every category used should ask
        # for it on the batch (a marginal-entropy term) instead.
        self.bottleneck = OneHotBottleneck(
            num_categories=num_categories, in_dim=last, hard=hard, prior_kl=False
        )
        self.style = nn.Linear(last, style_dim) if style_dim else None
        self.decoder = MLP(
            in_dim=num_categories + style_dim, hidden=list(reversed(hidden)), out_dim=in_dim
        )

    @property
    def num_categories(self) -> int:
        return self.bottleneck.num_categories

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x (B, in_dim)`` -> ``(q (B, K) = softmax(logits), code (B,) in 0..K-1,
        x_hat (B, in_dim))``; in training the code is a Gumbel sample."""
        h = self.encoder(x)  # (B, hidden[-1])
        out = self.bottleneck(h)  # z: (B, K) one-hot
        q = torch.softmax(self.bottleneck.logits(h)[:, 0], dim=-1)  # (B, K)
        z = out.z if self.style is None else torch.cat([out.z, self.style(h)], dim=1)
        return q, out.info["indices"][:, 0], self.decoder(z)

    @torch.no_grad()
    def classify(self, x: Tensor) -> Tensor:
        """The code of each image in eval mode: ``argmax`` of the logits, ``(B,)``."""
        was = self.training
        self.eval()
        codes = self.bottleneck(self.encoder(x)).info["indices"][:, 0]
        self.train(was)
        return codes

    @torch.no_grad()
    def prototypes(self, x: Tensor | None = None) -> Tensor:
        """Decoder output for each one-hot code, ``(K, in_dim)``: with the mean style code of
        the images of ``x`` that get that code (a typical member), else a zero style code."""
        k = self.num_categories
        device = next(self.parameters()).device
        style = torch.zeros(k, self.style_dim, device=device)
        if x is not None and self.style is not None:
            was = self.training
            self.eval()
            h = self.encoder(x.to(device))
            codes = self.bottleneck(h).info["indices"][:, 0]
            s = self.style(h)
            for c in codes.unique().tolist():
                style[c] = s[codes == c].mean(0)
            self.train(was)
        return self.decoder(torch.cat([torch.eye(k, device=device), style], dim=1))

    # -- saving and loading (from_config, save_pretrained, from_pretrained: SavedByConfig) ---
    @property
    def config(self) -> dict[str, Any]:
        """The constructor's arguments: what :meth:`from_config` takes."""
        return {
            "in_dim": self.in_dim,
            "hidden": list(self.hidden),
            "num_categories": self.num_categories,
            "style_dim": self.style_dim,
            "hard": self.hard,
        }


class BitAutoencoder(SavedByConfig, nn.Module):
    """Encoder -> one-bit code (+ continuous style code) -> decoder; the bit splits the data.

    Args:
        in_dim: Input features (64 for 8x8 images, flattened).
        hidden: Encoder layer sizes after the input; the decoder mirrors them. The encoder's
            last layer is a leaky ReLU: a dead last layer would make the bit constant.
        style_dim: Size of a deterministic continuous code passed to the decoder next to the
            bit; 0 for a pure one-bit autoencoder (its decoder draws two prototypes).
        stochastic: Sample the bit in training (arXiv 1308.3432, sec. 3) rather than threshold
            it (straight-through either way).
    """

    model_type: ClassVar[str] = "bit_autoencoder"

    def __init__(
        self,
        *,
        in_dim: int = 64,
        hidden: Sequence[int] = (128, 64),
        style_dim: int = 0,
        stochastic: bool = True,
    ) -> None:
        super().__init__()
        hidden = _check_sizes("BitAutoencoder", in_dim, hidden, style_dim)
        self.in_dim, self.hidden, self.style_dim = in_dim, hidden, style_dim
        self.stochastic = stochastic
        *inner, last = hidden
        self.encoder = MLP(in_dim=in_dim, hidden=inner, out_dim=last, out_activation="leaky_relu")
        # prior_kl would pull every image's bit towards p = 0.5; an objective that wants
        # balanced sides should ask for it on the batch (e.g. a mutual-information term).
        self.bottleneck = BinaryBottleneck(
            code_dim=1, in_dim=last, stochastic=stochastic, prior_kl=False
        )
        self.style = nn.Linear(last, style_dim) if style_dim else None
        self.decoder = MLP(in_dim=1 + style_dim, hidden=list(reversed(hidden)), out_dim=in_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x (B, in_dim)`` -> ``(p (B,) = P(bit = 1), x_hat (B, in_dim))``."""
        h = self.encoder(x)
        out = self.bottleneck(h)  # z: (B, 1) bit with a straight-through gradient
        p = torch.sigmoid(self.bottleneck.logits(h)[:, 0])
        z = out.z if self.style is None else torch.cat([out.z, self.style(h)], dim=1)
        return p, self.decoder(z)

    @torch.no_grad()
    def split(self, x: Tensor) -> Tensor:
        """Eval-mode bit of each image, ``(B,)`` bool (True: side 1)."""
        was = self.training
        self.eval()
        bits = self.bottleneck(self.encoder(x)).z[:, 0] > 0.5
        self.train(was)
        return bits

    @torch.no_grad()
    def prototypes(self) -> Tensor:
        """Decoder output for bit 0 and bit 1 with a zero style code: ``(2, in_dim)``."""
        device = next(self.parameters()).device
        bits = torch.tensor([[0.0], [1.0]], device=device)
        return self.decoder(torch.cat([bits, torch.zeros(2, self.style_dim, device=device)], 1))

    # -- saving and loading (from_config, save_pretrained, from_pretrained: SavedByConfig) ---
    @property
    def config(self) -> dict[str, Any]:
        """The constructor's arguments: what :meth:`from_config` takes."""
        return {
            "in_dim": self.in_dim,
            "hidden": list(self.hidden),
            "style_dim": self.style_dim,
            "stochastic": self.stochastic,
        }
