"""The tiny VQ autoencoder the code tests encode with (12 inputs, ``codes`` codes of size 4)."""

from __future__ import annotations

import torch

from seqae.core import Autoencoder


def vq_model(
    seed: int = 0, *, codes: int = 3, k: int = 8, likelihood: str = "gaussian"
) -> Autoencoder:
    """A seeded VQ autoencoder with ``codes`` codebook indices per sample out of ``k``."""
    torch.manual_seed(seed)
    return Autoencoder.from_config(
        {
            "encoder": {"name": "mlp", "in_dim": 12, "hidden": [16], "out_dim": codes * 4,
                        "out_shape": [codes, 4]},
            "bottleneck": {"name": "vq", "dim": 4, "codebook_size": k},
            "decoder": {"name": "mlp", "in_dim": codes * 4, "hidden": [16], "out_dim": 12},
            "likelihood": likelihood,
        }
    )  # fmt: skip
