"""The VQ-VAE of the ``vqvae`` and ``compress`` recipes: its settings, builder and loss.

VQ-VAE: van den Oord et al. 2017, arXiv 1711.00937. The input decides the architecture:

- vectors ``(N, P)``, e.g. the 8x8 digits as 64 values: an MLP encoder ``P-h1-...-(M*D)``
  whose output is read as ``M = num_codes`` code vectors of size ``D = code_dim``, each
  quantised to the nearest of ``K = codebook_size`` codes, and the mirrored MLP decoder;
- images ``(N, C, R, R)``: a convolutional encoder (one stride-2 layer per entry of
  ``channels``) giving a ``(D, R / 2^L, R / 2^L)`` map, quantised at every position, and the
  mirrored transposed-convolution decoder.

The quantiser is :class:`~seqae.core.VectorQuantizer` (nearest code, straight-through gradient,
commitment loss; EMA codebook, k-means initialisation and dead-code restarts as configured).
Settings come as two config blocks: ``model`` (``codebook_size``, ``code_dim``, ``num_codes``,
``hidden``, ``channels``, ``norm``, ``likelihood``) and ``quantizer`` (keyword arguments of
:class:`~seqae.core.VectorQuantizer`).

    check_vqvae_settings(cfg["model"], cfg["quantizer"])          # before loading data
    model = build_vqvae(cfg["model"], cfg["quantizer"], x_train)  # refuses data it cannot take
    out = model(x)
    loss = reconstruction_loss(model, out.x_hat, x) + out.loss    # out.loss: beta * commitment
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from seqae.config import ConfigError
from seqae.core import losses
from seqae.core.model import Autoencoder

__all__ = [
    "VQVAE_LIKELIHOODS",
    "VQVAE_NORMS",
    "build_vqvae",
    "check_vqvae_fits",
    "check_vqvae_settings",
    "reconstruction_loss",
]

#: ``model.likelihood``: the mean squared error, or the Bernoulli cross-entropy (binary images).
VQVAE_LIKELIHOODS = ("gaussian", "bernoulli")
#: ``model.norm``: the convolutional layers' normalisation (None: none).
VQVAE_NORMS = ("batch", "group", "layer", None)


def check_vqvae_settings(
    model_cfg: Mapping[str, Any], quant_cfg: Mapping[str, Any], *, prefix: str = ""
) -> None:
    """Refuse impossible model and quantiser settings before any data is loaded.

    Args:
        model_cfg: The ``model`` block (see the module docstring).
        quant_cfg: The ``quantizer`` block.
        prefix: How the blocks' parent is named in messages (``"vqvae."`` in a nested config).

    Raises:
        ConfigError: One line naming the setting and what was expected.
    """
    m, q, model, quant = model_cfg, quant_cfg, f"{prefix}model.", f"{prefix}quantizer."
    if m["codebook_size"] < 2:
        raise ConfigError(
            f"{model}codebook_size must be >= 2 (one code carries no information), "
            f"got {m['codebook_size']}"
        )
    for key in ("code_dim", "num_codes"):
        if m[key] < 1:
            raise ConfigError(f"{model}{key} must be >= 1, got {m[key]}")
    if not m["hidden"] or any(h <= 0 for h in m["hidden"]):
        raise ConfigError(f"{model}hidden must list positive layer sizes, got {m['hidden']}")
    if not m["channels"] or any(c <= 0 for c in m["channels"]):
        raise ConfigError(f"{model}channels must list positive channel sizes, got {m['channels']}")
    if m["likelihood"] not in VQVAE_LIKELIHOODS:
        raise ConfigError(
            f"{model}likelihood must be one of {', '.join(VQVAE_LIKELIHOODS)}, "
            f"got {m['likelihood']!r}"
        )
    if m["norm"] not in VQVAE_NORMS:
        raise ConfigError(f"{model}norm must be batch, group, layer or null, got {m['norm']!r}")
    for key in ("commitment_weight", "dead_code_threshold", "kmeans_iters"):
        if q[key] < 0:
            raise ConfigError(f"{quant}{key} must be >= 0, got {q[key]}")
    if not 0.0 <= q["decay"] < 1.0:
        raise ConfigError(f"{quant}decay must be in [0, 1), got {q['decay']}")


def check_vqvae_fits(model_cfg: Mapping[str, Any], x: Tensor, *, prefix: str = "") -> None:
    """Refuse a model that cannot take inputs like ``x`` (before anything is built).

    Args:
        model_cfg: The ``model`` block.
        x: Inputs, ``(N, P)`` vectors or ``(N, C, R, R)`` images.
        prefix: How the block's parent is named in messages.

    Raises:
        ConfigError: More code vectors than input values, or an image side that the stride-2
            layers cannot halve that often.
    """
    if x.dim() == 2:  # vectors: the MLP
        if model_cfg["num_codes"] > x.shape[1]:
            raise ConfigError(
                f"{prefix}model.num_codes={model_cfg['num_codes']} code vectors per sample "
                f"exceed the {x.shape[1]} input values per sample; expected at most {x.shape[1]}"
            )
        return
    side, layers = x.shape[-1], len(model_cfg["channels"])
    if side % 2**layers:
        raise ConfigError(
            f"{prefix}model.channels has {layers} stride-2 layers, so images need a side "
            f"divisible by {2**layers}; got {side}x{side} images (use fewer layers or another "
            "resolution)"
        )


def build_vqvae(
    model_cfg: Mapping[str, Any], quant_cfg: Mapping[str, Any], x: Tensor
) -> Autoencoder:
    """The VQ-VAE for inputs like ``x``: an MLP with several code vectors, or a conv net with a
    code map (see the module docstring).

    Args:
        model_cfg: The ``model`` block.
        quant_cfg: The ``quantizer`` block: keyword arguments of the vector quantiser.
        x: Example inputs (only their shape is read): ``(N, P)`` or ``(N, C, R, R)``.

    Raises:
        ConfigError: The model cannot take inputs like ``x`` (:func:`check_vqvae_fits`).
    """
    check_vqvae_fits(model_cfg, x)
    K, D = model_cfg["codebook_size"], model_cfg["code_dim"]
    quantizer = {"name": "vq", "dim": D, "codebook_size": K, **quant_cfg}
    if x.dim() == 2:
        M, pixels = model_cfg["num_codes"], x.shape[1]
        encoder = {
            "name": "mlp",
            "in_dim": pixels,
            "hidden": list(model_cfg["hidden"]),
            "out_dim": M * D,
            "out_shape": [M, D],  # (B, M, D): M code vectors per input
        }
        decoder = {
            "name": "mlp",
            "in_dim": M * D,
            "hidden": list(reversed(model_cfg["hidden"])),
            "out_dim": pixels,
        }
        quantizer["feature_dim"] = -1
    else:
        channels, side = x.shape[1], x.shape[-1]
        encoder = {
            "name": "conv2d",
            "in_channels": channels,
            "image_size": side,
            "channels": list(model_cfg["channels"]),
            "out_channels": D,  # (B, D, R / 2^L, R / 2^L): one code per map position
            "norm": model_cfg["norm"],
        }
        decoder = {
            "name": "conv2d",
            "out_channels": channels,
            "image_size": side,
            "channels": list(reversed(model_cfg["channels"])),
            "in_channels": D,
            "norm": model_cfg["norm"],
        }
        quantizer["feature_dim"] = 1
    return Autoencoder.from_config(
        {
            "encoder": encoder,
            "bottleneck": quantizer,
            "decoder": decoder,
            "likelihood": model_cfg["likelihood"],
        }
    )


def reconstruction_loss(model: Autoencoder, x_hat: Tensor, x: Tensor) -> Tensor:
    """Mean over pixels: the squared error (``likelihood: gaussian``) or the cross-entropy from
    logits (``bernoulli``).

    Args:
        model: The VQ-VAE (its ``likelihood`` picks the loss).
        x_hat: The decoder's output, ``x``'s shape (logits for ``bernoulli``).
        x: The inputs, values in ``[0, 1]``.
    """
    if model.likelihood == "bernoulli":
        return losses.bce_with_logits(x_hat, x, reduction="mean")
    return losses.mse(x_hat, x)
