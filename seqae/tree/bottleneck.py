"""The tree CRF as a bottleneck: span scores in, sampled binary trees out (URNNG's q(z | x)).

Keeps the core's contract ``forward(h) -> BottleneckOutput(z, loss, info)``. The input ``h``
is a ``(B, N, N)`` tensor of span scores (from :class:`seqae.tree.crf.SpanScorer`, the
encoder), with optional sentence ``lengths``; the bottleneck itself has no parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from seqae.core.base import BottleneckOutput, check_finite_input
from seqae.tree.crf import TreeCRF

__all__ = ["TreeCRFBottleneck"]


class TreeCRFBottleneck(nn.Module):
    """Sample ``samples`` binary trees per sentence from the tree CRF the span scores define.

    * ``z``: ``(B, samples, N, N)`` span indicators of the sampled trees (leaves included,
      0 on padding); not differentiable: for URNNG's score-function gradient compute
      ``self.distribution(h, lengths).log_prob(z)``, which is.
    * ``loss``: minus the exact entropy of q, averaged over the batch (nats per sentence):
      the entropy term of URNNG's ELBO, as a loss to minimise; a recipe weights it.
    * ``info`` (detached): ``log_z`` ``(B,)``, ``entropy`` ``(B,)``, ``log_prob`` ``(B, samples)``
      of the sampled trees.

    There is no ``sample_prior``: URNNG's prior over trees is the RNNG decoder itself.

    Args:
        samples: Trees drawn per sentence (URNNG: 8 for its REINFORCE baseline).
    """

    def __init__(self, *, samples: int = 1) -> None:
        super().__init__()
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"TreeCRFBottleneck: samples must be a positive int, got {samples!r}")
        self.samples = samples

    def distribution(self, h: Tensor, lengths: Tensor | Sequence[int] | None = None) -> TreeCRF:
        """The tree CRF of span scores ``h`` ``(B, N, N)`` and ``lengths`` ``(B,)``."""
        return TreeCRF(h, lengths)

    def forward(
        self,
        h: Tensor,
        lengths: Tensor | Sequence[int] | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> BottleneckOutput:
        """Sample trees from the CRF of ``h``.

        Args:
            h: ``(B, N, N)`` span scores; only the spans inside each sentence are read.
            lengths: ``(B,)`` sentence lengths in ``1..N``; ``None``: all ``N``.
            generator: Random generator on ``h``'s device for the samples.
        """
        crf = self.distribution(h, lengths)
        entropy = crf.entropy()
        # NaN/inf inside a sentence makes its entropy non-finite: one host read, no extra pass
        check_finite_input(crf.scores, who="TreeCRFBottleneck", stat=entropy.detach().sum())
        z = crf.sample(self.samples, generator=generator)
        with torch.no_grad():
            log_z = crf.log_partition()
            log_prob = crf.score(z) - log_z.unsqueeze(1)
        info = {"log_z": log_z, "entropy": entropy.detach(), "log_prob": log_prob}
        return BottleneckOutput(z=z, loss=-entropy.mean(), info=info)

    def extra_repr(self) -> str:
        return f"samples={self.samples}"
