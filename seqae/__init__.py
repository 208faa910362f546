"""seqae: autoencoders for sequence and disentanglement experiments.

The library lives in subpackages: :mod:`seqae.core` (bottlenecks, losses, networks, the
autoencoder), :mod:`seqae.training` (devices, DDP, checkpoints, logging), :mod:`seqae.data`,
:mod:`seqae.metrics`; components are found by name through :mod:`seqae.registry`.
"""

__version__ = "0.1.0"


def load_pretrained(directory, *, map_location="cpu"):  # noqa: ANN001, ANN201 - see saving
    """Load any saved seqae model folder through the registry (:mod:`seqae.core.saving`)."""
    from seqae.core.saving import load_pretrained as _load

    return _load(directory, map_location=map_location)
