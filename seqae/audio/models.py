"""The voice-conversion models, re-exported from their own files (one concept per file):

- :mod:`seqae.audio.blocks`: length masks, masked statistics, padding, the conv blocks, the AdaIN
  decoder, :class:`SpeakerEncoder` and the shared argument checks.
- :mod:`seqae.audio.vc_base`: :class:`VCOutput`, :class:`VoiceConversionModel` (config round
  trip, one-shot conversion, saving and loading) and :func:`load_vc_model`.
- :mod:`seqae.audio.adain_vc`: :class:`AdaINVC` (arXiv 1904.05742), the default.
- :mod:`seqae.audio.vq_vc`: :class:`VQVC` (arXiv 2005.07815).
- :mod:`seqae.audio.autovc`: :class:`AutoVC` (arXiv 1905.05879).
- :mod:`seqae.audio.adversary`: :class:`SpeakerAdversary` (arXiv 1804.02812).

The models are looked up by name through the registry kind ``vc_model``
(``seqae.registry.get("vc_model", "adain_vc")``); this module only keeps
``from seqae.audio.models import AdaINVC, load_vc_model, ...`` working.
"""

from seqae.audio.adain_vc import AdaINVC
from seqae.audio.adversary import SpeakerAdversary
from seqae.audio.autovc import AutoVC
from seqae.audio.blocks import (
    AdaINBlock,
    AdaINDecoder,
    ConvBlock,
    ConvStack,
    Postnet,
    SpeakerEncoder,
    length_mask,
    masked_instance_norm,
    masked_mean,
)
from seqae.audio.vc_base import VC_MODEL_KIND, VCOutput, VoiceConversionModel, load_vc_model
from seqae.audio.vq_vc import VQVC

__all__ = [
    "VC_MODEL_KIND",
    "VCOutput",
    "VoiceConversionModel",
    "SpeakerEncoder",
    "AdaINVC",
    "VQVC",
    "AutoVC",
    "SpeakerAdversary",
    "load_vc_model",
    "length_mask",
    "masked_mean",
    "masked_instance_norm",
    "ConvBlock",
    "AdaINBlock",
    "AdaINDecoder",
    "Postnet",
    "ConvStack",
]
