"""The autoencoder: encoder + bottleneck + decoder, and an observation model.

Reads top to bottom: build (``__init__`` / ``from_config``), the forward pass, the tutorial's
uses (``reconstruct``, ``sample``, ``interpolate``), the likelihood, and saving/loading.

    >>> model = Autoencoder.from_config({
    ...     "encoder": {"name": "mlp", "in_dim": 64, "hidden": [256, 128], "out_dim": 32},
    ...     "bottleneck": {"name": "gaussian", "in_dim": 32, "latent_dim": 8},
    ...     "decoder": {"name": "mlp", "in_dim": 8, "hidden": [128, 256], "out_dim": 64},
    ... })
    >>> out = model(x)                       # AutoencoderOutput(x_hat, z, loss, info)
    >>> model.save_pretrained("vae/")        # config.json + model.safetensors
    >>> same = Autoencoder.from_pretrained("vae/")
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from seqae.core import losses
from seqae.core.base import BottleneckOutput, NonFiniteInputError
from seqae.core.saving import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    SavedModelError,
    load_weights_strict,
    read_model_config,
    save_model_files,
)


def registry_build(kind: str, spec: Mapping[str, Any]) -> Any:
    from seqae import registry  # imported late: the registry loads plugins that import this module

    return registry.build(kind, spec)


__all__ = ["Autoencoder", "AutoencoderOutput", "slerp", "CONFIG_NAME", "WEIGHTS_NAME"]

_OPTION_KEYS = ("likelihood", "sigma", "learn_sigma", "sigma_shape", "noise", "noise_kind")

Likelihood = Literal["gaussian", "bernoulli"]


@dataclass
class AutoencoderOutput:
    """Result of :meth:`Autoencoder.forward`.

    Attributes:
        x_hat: Decoder output (the mean for a Gaussian likelihood, logits for Bernoulli). With
            ``num_samples = m`` latent samples it has ``m * B`` rows, sample-major.
        z: The code given to the decoder.
        loss: The bottleneck's own loss term (KL, commitment, ...), unweighted.
        info: The bottleneck's detached diagnostics.
    """

    x_hat: Tensor
    z: Tensor
    loss: Tensor
    info: dict[str, Tensor] = field(default_factory=dict)


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between rows of ``a`` and ``b`` (White 2016, arXiv 1609.04468).

    ``a``, ``b``: ``(B, ...)``; ``t``: ``(S,)`` in [0, 1]. Returns ``(S, B, ...)``. Falls back to
    linear interpolation where the two vectors are (anti)parallel.
    """
    a_flat, b_flat = a.flatten(1), b.flatten(1)  # (B, D)
    cos = torch.nn.functional.cosine_similarity(a_flat, b_flat, dim=1).clamp(-1.0, 1.0)  # (B,)
    omega = torch.acos(cos)
    so = torch.sin(omega)
    t = t.view(-1, 1).to(a)  # (S, 1)
    linear = (1 - t)[..., None] * a_flat + t[..., None] * b_flat  # (S, B, D)
    safe = so.abs() > 1e-6
    so_safe = torch.where(safe, so, torch.ones_like(so))
    wa = torch.sin((1 - t) * omega) / so_safe  # (S, B)
    wb = torch.sin(t * omega) / so_safe
    spherical = wa[..., None] * a_flat + wb[..., None] * b_flat
    out = torch.where(safe[None, :, None], spherical, linear)
    return out.view(t.shape[0], *a.shape)


class Autoencoder(nn.Module):
    """Encoder, bottleneck and decoder, with the likelihood used to score reconstructions.

    The plain AE is an :class:`~seqae.core.identity.IdentityBottleneck`, the VAE a
    :class:`~seqae.core.gaussian.GaussianBottleneck`, the VQ-VAE a
    :class:`~seqae.core.vq.VectorQuantizer`; binary and one-hot codes likewise.

    Args:
        encoder: Maps inputs ``x`` to features ``h``.
        bottleneck: Maps ``h`` to ``BottleneckOutput(z, loss, info)``.
        decoder: Maps codes ``z`` to ``x_hat``.
        likelihood: Observation model p(x|z): ``"gaussian"`` (decoder gives the mean) or
            ``"bernoulli"`` (decoder gives logits; data in [0, 1]).
        sigma: Standard deviation of the Gaussian likelihood (initial value when learned).
        learn_sigma: Learn log sigma as a parameter (sigma-VAE, Rybkin et al. 2021,
            arXiv 2006.13202), shared across features unless ``sigma_shape`` says otherwise.
        sigma_shape: Shape of the learned log sigma, broadcast against one example, e.g. ``()``
            for one shared value or ``(64,)`` for one per feature.
        noise: Corruption level for a denoising autoencoder (Vincent et al. 2008): applied to
            the input in training mode only; the loss still compares with the clean input.
        noise_kind: ``"gaussian"`` (additive, std = noise) or ``"masking"`` (each input value
            zeroed with probability noise).
    """

    def __init__(
        self,
        *,
        encoder: nn.Module,
        bottleneck: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood = "gaussian",
        sigma: float = 1.0,
        learn_sigma: bool = False,
        sigma_shape: tuple[int, ...] | list[int] = (),
        noise: float = 0.0,
        noise_kind: Literal["gaussian", "masking"] = "gaussian",
    ) -> None:
        super().__init__()
        if likelihood not in ("gaussian", "bernoulli"):
            raise ValueError(
                f"unknown likelihood {likelihood!r}; expected 'gaussian' or 'bernoulli'"
            )
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        if noise < 0 or (noise_kind == "masking" and noise >= 1):
            raise ValueError(f"noise level {noise} is out of range for {noise_kind!r} corruption")
        if noise_kind not in ("gaussian", "masking"):
            raise ValueError(f"unknown noise_kind {noise_kind!r}; expected 'gaussian' or 'masking'")
        self.encoder, self.bottleneck, self.decoder = encoder, bottleneck, decoder
        self.likelihood = likelihood
        self.noise, self.noise_kind = float(noise), noise_kind
        self.options: dict[str, Any] = {
            "likelihood": likelihood,
            "sigma": float(sigma),
            "learn_sigma": bool(learn_sigma),
            "sigma_shape": list(sigma_shape),
            "noise": float(noise),
            "noise_kind": noise_kind,
        }
        log_sigma = torch.full(tuple(sigma_shape), math.log(sigma))
        if learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None, **kwargs: Any) -> Autoencoder:
        """Build from a spec: ``{"encoder": spec, "bottleneck": spec, "decoder": spec, **options}``.

        Each spec is ``{"name": registered_name, **constructor_kwargs}``; options are this
        class's keyword arguments (likelihood, sigma, ...).
        """
        config = dict(config or {}, **kwargs)
        config.pop("name", None)
        missing = [k for k in ("encoder", "bottleneck", "decoder") if k not in config]
        if missing:
            raise ValueError(
                f"autoencoder config is missing {missing}; it needs encoder, bottleneck and decoder specs"
            )
        _check_keys(config, ("encoder", "bottleneck", "decoder", *_OPTION_KEYS))
        options = {k: config[k] for k in _OPTION_KEYS if k in config}
        return cls(
            encoder=registry_build("encoder", config["encoder"]),
            bottleneck=registry_build("bottleneck", config["bottleneck"]),
            decoder=registry_build("decoder", config["decoder"]),
            **options,
        )

    @classmethod
    def stacked(
        cls,
        sizes: Sequence[int],
        *,
        bottleneck: Mapping[str, Any] | None = None,
        activation: str = "relu",
        out_activation: str | None = None,
        **options: Any,
    ) -> Autoencoder:
        """A stacked (deep) autoencoder from a list of layer sizes.

        ``sizes = [64, 256, 128, 16]`` gives the encoder 64-256-128-16 and the mirrored decoder
        16-128-256-64 (Hinton & Salakhutdinov 2006). ``encoder.layers[i]`` is the i-th affine
        block, so the stack can be pretrained layer by layer.

        Args:
            sizes: Input size, hidden sizes, code size; at least two entries.
            bottleneck: Bottleneck spec (default: identity, a plain AE). Its input size must be
                ``sizes[-1]``; a decoder input of the bottleneck's ``code_size`` is used.
            activation: Hidden activation of encoder and decoder.
            out_activation: Decoder output activation (e.g. ``"sigmoid"``), default linear.
            **options: The model's keyword options (likelihood, noise, ...).
        """
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2:
            raise ValueError(
                f"a stacked autoencoder needs at least [input, code] sizes, got {sizes}"
            )
        bottleneck = dict(bottleneck or {"name": "identity"})
        _check_keys(options, _OPTION_KEYS)
        built = registry_build(
            "bottleneck", bottleneck
        )  # built once; its code_size sizes the decoder
        code = getattr(built, "code_size", None) or sizes[-1]
        encoder = registry_build(
            "encoder",
            {
                "name": "mlp",
                "in_dim": sizes[0],
                "hidden": sizes[1:-1],
                "out_dim": sizes[-1],
                "activation": activation,
                "out_activation": activation if bottleneck["name"] != "identity" else None,
            },
        )
        decoder = registry_build(
            "decoder",
            {
                "name": "mlp",
                "in_dim": code,
                "hidden": sizes[-2:0:-1],
                "out_dim": sizes[0],
                "activation": activation,
                "out_activation": out_activation,
            },
        )
        return cls(encoder=encoder, bottleneck=built, decoder=decoder, **options)

    @property
    def config(self) -> dict[str, Any]:
        """The JSON-able spec that rebuilds this model with :meth:`from_config`."""
        parts = {}
        for part in ("encoder", "bottleneck", "decoder"):
            spec = getattr(getattr(self, part), "seqae_spec", None)
            if spec is None:
                raise TypeError(
                    f"the {part} ({type(getattr(self, part)).__name__}) was not built from a registry spec, "
                    "so it cannot be described in config.json; build the model with Autoencoder.from_config "
                    "or the part with seqae.registry.build"
                )
            parts[part] = copy.deepcopy(spec)
        return {**parts, **copy.deepcopy(self.options)}

    # -- forward -----------------------------------------------------------------------------
    def corrupt(self, x: Tensor) -> Tensor:
        """The denoising autoencoder's corruption of its input (identity when noise = 0)."""
        if self.noise == 0.0:
            return x
        if self.noise_kind == "gaussian":
            return x + self.noise * torch.randn_like(x)
        return x * (torch.rand_like(x) >= self.noise).to(x.dtype)

    def encode(self, x: Tensor) -> BottleneckOutput:
        """``x -> BottleneckOutput(z, loss, info)``. Deterministic in eval mode.

        NaN or inf in ``x`` raise :class:`~seqae.core.base.NonFiniteInputError` (a
        ``ValueError``). ``x`` is not scanned on every call: the bottleneck checks its own input
        cheaply (seqae's bottlenecks raise ``NonFiniteInputError``), and only then is ``x``
        inspected, to say whether the data themselves were already non-finite. Layers with
        running statistics (batch norm in training mode) have seen the batch by then.
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"expected a torch.Tensor input, got {type(x).__name__}")
        try:
            return self.bottleneck(self.encoder(x))
        except NonFiniteInputError as err:
            _raise_if_input_not_finite(x, err)
            raise

    def decode(self, z: Tensor) -> Tensor:
        """``z -> x_hat`` (Gaussian mean, or Bernoulli logits)."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> AutoencoderOutput:
        x_in = self.corrupt(x) if self.training else x
        out = self.encode(x_in)
        return AutoencoderOutput(x_hat=self.decode(out.z), z=out.z, loss=out.loss, info=out.info)

    # -- the tutorial's uses ------------------------------------------------------------------
    def mean(self, x_hat: Tensor) -> Tensor:
        """Mean of p(x|z) given the decoder's output: the reconstruction a person looks at."""
        return torch.sigmoid(x_hat) if self.likelihood == "bernoulli" else x_hat

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Deterministic reconstruction (eval-mode code, likelihood mean)."""
        with _eval_mode(self):
            return self.mean(self.decode(self.encode(x).z))

    @torch.no_grad()
    def sample(self, n: int, **prior_kwargs: Any) -> Tensor:
        """Decode ``n`` codes drawn from the bottleneck's prior (VAE, VQ, binary, one-hot)."""
        sample_prior = getattr(self.bottleneck, "sample_prior", None)
        if sample_prior is None:
            raise TypeError(
                f"{type(self.bottleneck).__name__} has no prior to sample from; "
                "use a Gaussian, VQ, binary or one-hot bottleneck"
            )
        device = next(self.parameters()).device
        with _eval_mode(self):
            return self.mean(self.decode(sample_prior(n, device=device, **prior_kwargs)))

    @torch.no_grad()
    def interpolate(
        self,
        x_a: Tensor,
        x_b: Tensor,
        *,
        steps: int = 8,
        method: Literal["linear", "slerp"] = "linear",
    ) -> Tensor:
        """Decode codes on the path between the codes of ``x_a`` and ``x_b``.

        ``x_a``, ``x_b``: ``(B, ...)`` pairs. Returns ``(steps, B, ...)``: row 0 reconstructs
        ``x_a``, the last row ``x_b``. Spherical interpolation suits Gaussian priors, whose mass
        lies near a sphere in high dimension.
        """
        if steps < 2:
            raise ValueError(f"steps must be at least 2, got {steps}")
        if x_a.shape != x_b.shape:
            raise ValueError(
                f"x_a and x_b must have the same shape, got {tuple(x_a.shape)} and {tuple(x_b.shape)}"
            )
        with _eval_mode(self):
            z_a, z_b = self.encode(x_a).z, self.encode(x_b).z
            t = torch.linspace(0.0, 1.0, steps, device=z_a.device)
            if method == "linear":
                path = torch.lerp(z_a[None], z_b[None], t.view(-1, *([1] * z_a.dim())))
            elif method == "slerp":
                path = slerp(z_a, z_b, t)
            else:
                raise ValueError(f"unknown interpolation {method!r}; expected 'linear' or 'slerp'")
            x_hat = self.mean(self.decode(path.flatten(0, 1)))
        return x_hat.view(steps, x_a.shape[0], *x_hat.shape[1:])

    # -- likelihood ---------------------------------------------------------------------------
    def log_likelihood(self, x_hat: Tensor, x: Tensor) -> Tensor:
        """log p(x | z) per example, ``(B,)`` in nats, summed over every data dimension.

        When ``x_hat`` holds ``m`` samples per input (``m * B`` rows), ``x`` is repeated to match.
        """
        return -self._nll(x_hat, x, "per_example")

    def reconstruction_loss(self, x_hat: Tensor, x: Tensor) -> Tensor:
        """-log p(x|z) averaged over the batch: the ELBO's reconstruction term, nats per example."""
        return self._nll(x_hat, x, "batch_mean")

    def _nll(self, x_hat: Tensor, x: Tensor, reduction: losses.Reduction) -> Tensor:
        """-log p(x|z) with ``reduction`` (``"per_example"`` or ``"batch_mean"``)."""
        if x_hat.shape[0] != x.shape[0]:
            if x_hat.shape[0] % x.shape[0]:
                raise ValueError(
                    f"x_hat has {x_hat.shape[0]} rows, not a multiple of the batch {x.shape[0]}"
                )
            x = x.repeat(x_hat.shape[0] // x.shape[0], *([1] * (x.dim() - 1)))
        if x_hat.shape != x.shape:
            if x_hat.numel() == x.numel():
                x_hat = x_hat.reshape(x.shape)
            else:
                raise ValueError(
                    f"decoder output shape {tuple(x_hat.shape)} does not match data shape {tuple(x.shape)}"
                )
        if self.likelihood == "bernoulli":
            return losses.bce_with_logits(x_hat, x, reduction=reduction)
        return losses.gaussian_nll(x_hat, x, log_sigma=self.log_sigma, reduction=reduction)

    # -- saving and loading -------------------------------------------------------------------
    model_type = "autoencoder"

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``, each atomically
        (the one saved-model format, :mod:`seqae.core.saving`)."""
        return save_model_files(self, directory, model_type=self.model_type, config=self.config)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, map_location: str | torch.device = "cpu"
    ) -> Autoencoder:
        """Rebuild a model saved by :meth:`save_pretrained`; refuses weights of another model."""
        saved = read_model_config(directory, expected=(cls.model_type,))
        try:
            model = cls.from_config(saved.config)
        except (TypeError, ValueError, KeyError) as exc:
            raise SavedModelError(
                f"{saved.directory}: cannot build an autoencoder from its config.json "
                f"({str(exc).splitlines()[0]})"
            ) from None
        load_weights_strict(model, saved.weights_path, map_location=map_location)
        return model.to(map_location)


def _check_keys(keys: Iterable[str], valid: Sequence[str]) -> None:
    """Refuse autoencoder config keys that are not in ``valid``, listing the valid ones."""
    unknown = sorted(set(keys) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown autoencoder config keys {unknown}; valid keys: {', '.join(valid)}"
        )


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Temporarily put ``module`` in eval mode, restoring each submodule's own mode after."""
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        yield
    finally:
        for m, mode in modes.items():
            m.train(mode)


def _raise_if_input_not_finite(x: Tensor, err: Exception) -> None:
    """Name the input data as the culprit when they hold NaN or inf (the bottleneck said so)."""
    if x.is_floating_point() or x.is_complex():
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise NonFiniteInputError(
                f"input holds {bad} NaN or infinite values; clean the data before encoding"
            ) from err
