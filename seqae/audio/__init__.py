"""seqae's audio plugin: speaker/content disentangled autoencoders for voice conversion.

- :mod:`~seqae.audio.io`: audio files in and out (any rate, any channels), with clear errors.
- :mod:`~seqae.audio.features`: 16 kHz, 80-bin log-mels and their normalisation statistics.
- :mod:`~seqae.audio.augment`: frequency warps of log-mels (content perturbation, pseudo-speakers).
- :mod:`~seqae.audio.vocoder`: the vocoder interface and the Griffin-Lim default.
- :mod:`~seqae.audio.neural_vocoder`: a trained vocoder (ConvNeXt -> inverse STFT, after Vocos)
  and its losses (``seqae run vocoder``).
- :mod:`~seqae.audio.dataset`: VCTK-layout corpora, a log-mel cache, training crops.
- :mod:`~seqae.audio.corpus`: the embedded multi-speaker corpus, synthesized offline
  (``seqae data speech``).
- :mod:`~seqae.audio.blocks`: masks, conv blocks and the speaker encoder the models share.
- :mod:`~seqae.audio.vc_base`: the voice-conversion model interface, saving and
  :func:`load_vc_model`; the models, one file each: :mod:`~seqae.audio.adain_vc`,
  :mod:`~seqae.audio.vq_vc`, :mod:`~seqae.audio.autovc`, and the speaker adversary
  (:mod:`~seqae.audio.adversary`); :mod:`~seqae.audio.models` re-exports them. They are found by
  name through the registry kind ``vc_model``.
- :mod:`~seqae.audio.matching`: per-bin log-mel statistics matching to the target's references.
- :mod:`~seqae.audio.convert`: :class:`VoiceConverter` and ``seqae convert``.
- :mod:`~seqae.audio.evaluate`: the objective evaluation (``seqae vc-eval``).
"""

from seqae.extras import require_extra

require_extra("audio", feature="the audio plugin")

from seqae.audio.adain_vc import AdaINVC
from seqae.audio.adversary import SpeakerAdversary
from seqae.audio.augment import sample_warp_factors, warp_mels
from seqae.audio.autovc import AutoVC
from seqae.audio.convert import VoiceConverter
from seqae.audio.corpus import build_speech_corpus
from seqae.audio.dataset import (
    AUDIO_EXTENSIONS,
    SegmentBatcher,
    SpeechCorpus,
    SpeechDataError,
    Utterance,
    WaveformBatcher,
    load_features,
    scan_speakers,
)
from seqae.audio.evaluate import evaluate_conversion, evaluate_reference_counts, format_table
from seqae.audio.features import (
    FeatureConfig,
    FeatureMismatchError,
    FeatureNormalizer,
    MelExtractor,
    check_same_features,
    log_mel,
)
from seqae.audio.io import AudioFileError, load_audio, prepare_waveform, save_audio
from seqae.audio.matching import MelStatistics, match_statistics, mel_statistics
from seqae.audio.neural_vocoder import ISTFTVocoder, VocoderLoss, load_vocoder
from seqae.audio.vc_base import VCOutput, VoiceConversionModel, load_vc_model
from seqae.audio.vocoder import GriffinLimVocoder, Vocoder
from seqae.audio.vq_vc import VQVC

__all__ = [
    "AUDIO_EXTENSIONS",
    "VQVC",
    "AdaINVC",
    "AutoVC",
    "SpeakerAdversary",
    "VCOutput",
    "VoiceConversionModel",
    "VoiceConverter",
    "build_speech_corpus",
    "evaluate_conversion",
    "evaluate_reference_counts",
    "format_table",
    "load_vc_model",
    "AudioFileError",
    "FeatureConfig",
    "FeatureMismatchError",
    "FeatureNormalizer",
    "GriffinLimVocoder",
    "ISTFTVocoder",
    "MelExtractor",
    "MelStatistics",
    "SegmentBatcher",
    "SpeechCorpus",
    "SpeechDataError",
    "Utterance",
    "Vocoder",
    "VocoderLoss",
    "WaveformBatcher",
    "check_same_features",
    "load_audio",
    "load_features",
    "load_vocoder",
    "log_mel",
    "match_statistics",
    "mel_statistics",
    "prepare_waveform",
    "sample_warp_factors",
    "save_audio",
    "scan_speakers",
    "warp_mels",
]
