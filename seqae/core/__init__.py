"""The shared core: bottlenecks, losses, schedules, network builders, the autoencoder, the
code classifiers, and the one saved-model format.

Every bottleneck keeps one contract, ``forward(h) -> BottleneckOutput(z, loss, info)``; every
saveable model writes and reads its folder through :mod:`seqae.core.saving`.
"""

from seqae.core import losses, schedules
from seqae.core.base import Bottleneck, BottleneckOutput, PriorBottleneck
from seqae.core.binary import BinaryBottleneck
from seqae.core.classifier import BitAutoencoder, OneHotClassifier
from seqae.core.gaussian import GaussianBottleneck
from seqae.core.identity import IdentityBottleneck
from seqae.core.model import Autoencoder, AutoencoderOutput, slerp
from seqae.core.nets import MLP, Conv1dDecoder, Conv1dEncoder, Conv2dDecoder, Conv2dEncoder
from seqae.core.onehot import OneHotBottleneck
from seqae.core.saving import SavedModelError, load_pretrained
from seqae.core.vq import VectorQuantizer

__all__ = [
    "Autoencoder",
    "AutoencoderOutput",
    "BinaryBottleneck",
    "BitAutoencoder",
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
    "OneHotClassifier",
    "SavedModelError",
    "PriorBottleneck",
    "VectorQuantizer",
    "load_pretrained",
    "losses",
    "schedules",
    "slerp",
]
