"""seqae: autoencoders for sequence and disentanglement experiments.

The library lives in subpackages: :mod:`seqae.core` (bottlenecks, losses, networks, the
autoencoder), :mod:`seqae.training` (devices, DDP, checkpoints, logging), :mod:`seqae.data`,
:mod:`seqae.metrics`; components are found by name through :mod:`seqae.registry`.
"""

__version__ = "0.1.0"
