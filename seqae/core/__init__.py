"""The shared core: bottlenecks, losses, schedules, network builders and the autoencoder.

Every bottleneck keeps one contract, ``forward(h) -> BottleneckOutput(z, loss, info)``.
"""

from seqae.core import losses, schedules
from seqae.core.base import Bottleneck, BottleneckOutput, PriorBottleneck
from seqae.core.binary import BinaryBottleneck
from seqae.core.gaussian import GaussianBottleneck
from seqae.core.identity import IdentityBottleneck
from seqae.core.model import Autoencoder, AutoencoderOutput, slerp
from seqae.core.nets import MLP, Conv1dDecoder, Conv1dEncoder, Conv2dDecoder, Conv2dEncoder
from seqae.core.onehot import OneHotBottleneck
from seqae.core.vq import VectorQuantizer

__all__ = [
    "Autoencoder",
    "AutoencoderOutput",
    "BinaryBottleneck",
    "Bottleneck",
    "BottleneckOutput",
    "Conv1dDecoder",
    "Conv1dEncoder",
    "Conv2dDecoder",
    "Conv2dEncoder",
    "GaussianBottleneck",
    "IdentityBottleneck",
    "MLP",
    "OneHotBottleneck",
    "PriorBottleneck",
    "VectorQuantizer",
    "losses",
    "schedules",
    "slerp",
]
