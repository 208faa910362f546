"""The latent-space tab: a VAE trained on the 8x8 digits (``seqae run vae_digits``).

- **Sliders** over the latent dimensions decode a digit live (the prior is N(0, 1) in every
  dimension, so +-3 covers it); a button sets them to a test digit's posterior mean.
- **Between two test digits**: the strip of decodings on the straight line between their codes
  and on the great circle (spherical interpolation), beside the pixel-wise blend of the two
  images, with the tutorial's moon-phase example that says why the latent path is the one to
  look at.
- **Samples from the prior**, reproducible by seed.

The two last sections are the VQ-VAE tab's too (:mod:`seqae.demo.digits`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr
import numpy as np
import torch

from seqae.demo.cache import ModelCache
from seqae.demo.digits import (
    BIG,
    MAX_SLIDERS,
    DigitsModels,
    between_digits_section,
    decoded_image,
    digit_picker,
    model_dropdown,
    on_model_change,
    prior_samples_section,
    wire_live_decoding,
)
from seqae.demo.discovery import FoundModel
from seqae.demo.images import grid_image

__all__ = ["Z_RANGE", "LatentTab"]

#: Slider range of a Gaussian latent: the prior's +-3 standard deviations.
Z_RANGE = 3.0


class LatentTab:
    """The VAE tab's handlers and layout.

    Args:
        models: The found VAEs (kind ``vae``).
        cache: The app's model cache.
    """

    def __init__(self, models: Sequence[FoundModel], cache: ModelCache) -> None:
        self.digits = DigitsModels(models, cache)

    def latent_dim(self, name: str) -> int:
        """Size of model ``name``'s latent code."""
        return int(self.digits.found(name).config["bottleneck"]["latent_dim"])

    def decode(self, name: str, *values: float) -> np.ndarray:
        """The digit decoded from the sliders' values (dimensions beyond the sliders are 0)."""
        model = self.digits.model(name)
        z = torch.zeros(1, self.latent_dim(name))
        n = min(len(values), z.shape[1])
        z[0, :n] = torch.tensor([float(v) for v in values[:n]])
        with torch.no_grad():
            return grid_image(model.mean(model.decode(z)), ncol=1, scale=BIG)

    def posterior_mean(self, name: str, index: float) -> list[float]:
        """Test digit ``index``'s posterior mean, one value per slider (clipped to their
        range; 0 for sliders beyond the model's latent size)."""
        model = self.digits.model(name)
        x = self.digits.test_digit(name, index)[None]
        with torch.no_grad():
            mu, _ = model.bottleneck.posterior(model.encoder(x))
        values = mu[0].clamp(-Z_RANGE, Z_RANGE).tolist()[:MAX_SLIDERS]
        return [round(v, 2) for v in values] + [0.0] * (MAX_SLIDERS - len(values))

    def build(self) -> None:
        """Build the tab's content inside the current Blocks context."""
        default = self.digits.names[0]
        intro = (
            "Decode a digit from a point of the latent space. The prior is N(0, 1) in every "
            f"dimension; the sliders cover +-{Z_RANGE:g} (at most {MAX_SLIDERS} dimensions "
            "get one; the others stay 0)."
        )
        choice = model_dropdown(intro, self.digits, default, "a VAE run")
        with gr.Row():
            with gr.Column():
                sliders = [
                    gr.Slider(
                        -Z_RANGE,
                        Z_RANGE,
                        value=0.0,
                        step=0.05,
                        label=f"z{k + 1}",
                        elem_id=f"latent-z{k + 1}",
                        visible=k < self.latent_dim(default),
                    )
                    for k in range(MAX_SLIDERS)
                ]
                picker = digit_picker("Set the sliders to its code", "latent")
            decoded = decoded_image(self.decode(default), "latent-decoded")
        wire_live_decoding(choice, sliders, decoded, self.decode, picker, self.posterior_mean)
        sections = [
            between_digits_section(self.digits, choice, default),
            prior_samples_section(self.digits, choice, default, what="N(0, I)"),
        ]

        def own(name: str) -> list[Any]:
            dim = self.latent_dim(name)
            updates = [gr.update(value=0.0, visible=k < dim) for k in range(MAX_SLIDERS)]
            return [*updates, self.decode(name)]

        on_model_change(choice, [*sliders, decoded], own, sections)
