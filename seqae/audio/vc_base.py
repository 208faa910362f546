"""What every voice-conversion model shares: :class:`VCOutput`, and :class:`VoiceConversionModel`
(config round trip, one-shot conversion, saving and loading), plus :func:`load_vc_model`.

Every model reads and writes *normalised* log-mels ``x`` of shape ``(B, n_mels, T)`` (see
:class:`~seqae.audio.features.FeatureNormalizer`, which each model carries as ``normalizer`` so
that its statistics travel with the weights) and keeps one interface:

    >>> model = AdaINVC()                                  # or VQVC(), AutoVC()
    >>> out = model(x)                                     # VCOutput(recon, content, speaker)
    >>> z = model.encode_content(x).z                      # (B, C, T') content code
    >>> s = model.encode_speaker(x, lengths)               # (B, S) speaker embedding
    >>> y = model.decode(z, s, length=x.shape[-1])         # (B, n_mels, T)
    >>> y = model.convert(source, [ref1, ref2])            # one-shot conversion, (n_mels, T)
    >>> model.save_pretrained("vc/"); same = load_vc_model("vc/")

A model is saved in the one saved-model format (:mod:`seqae.core.saving`): ``config.json``
holds ``model_type``, the constructor's ``config`` and, as the extra ``features``, the feature
settings; ``model.safetensors`` the weights with the normaliser's statistics. The models are
found by name through the registry kind ``vc_model`` (``model_type`` -> the class), which is
where a plugin adds its own.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from seqae.audio.blocks import _check_mels
from seqae.audio.features import FeatureConfig, FeatureNormalizer
from seqae.core.base import BottleneckOutput
from seqae.core.saving import (
    CONFIG_NAME,
    SavedModel,
    SavedModelError,
    load_weights_strict,
    read_model_config,
    save_model_files,
)

__all__ = ["VC_MODEL_KIND", "VCOutput", "VoiceConversionModel", "load_vc_model"]

VC_MODEL_KIND = "vc_model"


class VCOutput(NamedTuple):
    """What a voice-conversion model's ``forward`` returns.

    Attributes:
        recon: ``(B, n_mels, T)`` reconstruction of the input (same ``T``).
        content: The content code ``z`` ``(B, C, T')`` with the bottleneck's own loss (KL, VQ
            commitment, or zero) and its diagnostics.
        speaker: ``(B, S)`` speaker embedding the decoder used.
    """

    recon: Tensor
    content: BottleneckOutput
    speaker: Tensor


def _jsonable(value: Any) -> Any:
    if isinstance(value, FeatureConfig):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _feature_config(value: FeatureConfig | Mapping[str, Any] | None, *, who: str) -> FeatureConfig:
    if value is None:
        return FeatureConfig()
    if isinstance(value, FeatureConfig):
        return value
    if isinstance(value, Mapping):
        return FeatureConfig.from_dict(value)
    raise TypeError(
        f"{who}: feature_config must be a FeatureConfig or a dict, got {type(value).__name__}"
    )


class VoiceConversionModel(nn.Module):
    """What every voice-conversion model shares: config round trip, conversion, saving.

    Subclasses define ``model_type`` and ``encode_content``, ``encode_speaker``, ``decode``,
    ``forward``, and call :meth:`_record_config` with their constructor's ``locals()``.
    """

    model_type: ClassVar[str] = ""
    feature_config: FeatureConfig
    normalizer: FeatureNormalizer
    speaker_dim: int
    content_dim: int
    config: dict[str, Any]
    #: The corpus voices the model was trained on, as its training recipe records them (saved
    #: as the extra ``training_speakers``); ``None``: not recorded. Evaluation reads it to tell
    #: the voices the model heard from those it never heard.
    training_speakers: list[str] | None = None

    def _record_config(self, local_vars: Mapping[str, Any]) -> None:
        params = inspect.signature(type(self).__init__).parameters
        config = {k: _jsonable(local_vars[k]) for k in params if k != "self"}
        config["feature_config"] = self.feature_config.to_dict()
        self.config = config

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> VoiceConversionModel:
        """Build from a dict of constructor keyword arguments (as :attr:`config` holds them).

        Args:
            config: The constructor's keyword arguments.
            **kwargs: More of them (override ``config``), so that the registry's
                ``build("model", {"name": model_type, ...})`` works as for the autoencoder.

        Raises ``ValueError`` naming unknown keys and listing the valid ones.
        """
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(
                f"{cls.__name__}.from_config: expected a dict, got {type(config).__name__}"
            )
        config = {**(config or {}), **kwargs}
        valid = [k for k in inspect.signature(cls.__init__).parameters if k != "self"]
        unknown = sorted(set(config) - set(valid))
        if unknown:
            raise ValueError(
                f"{cls.__name__}: unknown config key(s) {unknown}; valid keys: {', '.join(valid)}"
            )
        return cls(**config)

    @property
    def n_mels(self) -> int:
        """Mel bins of the features the model reads and writes."""
        return self.feature_config.n_mels

    def _check_input(self, x: Tensor) -> None:
        _check_mels(x, self.n_mels, who=type(self).__name__)

    # -- one-shot conversion -------------------------------------------------------------------
    def _as_single(self, mel: Tensor, what: str) -> Tensor:
        if not isinstance(mel, Tensor):
            raise TypeError(f"convert: {what} must be a torch.Tensor, got {type(mel).__name__}")
        if mel.dim() == 3 and mel.shape[0] == 1:
            mel = mel[0]
        if mel.dim() != 2 or mel.shape[0] != self.n_mels:
            raise ValueError(
                f"convert: {what} must be a normalised log-mel of shape ({self.n_mels}, frames) "
                f"or (1, {self.n_mels}, frames), got {tuple(mel.shape)}"
            )
        return mel

    @torch.no_grad()
    def speaker_embedding(self, references: Sequence[Tensor]) -> Tensor:
        """Mean of the per-reference speaker embeddings: ``[(n_mels, T_i), ...] -> (1, S)``."""
        if isinstance(references, Tensor) or len(references) == 0:
            raise ValueError(
                "convert: references must be a non-empty list of (n_mels, frames) mels"
            )
        device = next(self.parameters()).device
        embs = [
            self.encode_speaker(self._as_single(r, f"references[{i}]").to(device)[None])
            for i, r in enumerate(references)
        ]
        return torch.cat(embs).mean(0, keepdim=True)  # (1, S)

    @torch.no_grad()
    def convert(self, source: Tensor, references: Sequence[Tensor]) -> Tensor:
        """Say ``source``'s content in the voice of ``references`` (one or a few utterances).

        Does not change train/eval mode: call ``model.eval()`` first for deterministic output.

        Args:
            source: Normalised log-mel ``(n_mels, T)`` or ``(1, n_mels, T)``.
            references: Normalised log-mels ``(n_mels, T_i)`` of the target speaker; the speaker
                embedding is the mean of their embeddings.

        Returns:
            ``(n_mels, T)`` normalised log-mel.
        """
        src = self._as_single(source, "source")
        device = next(self.parameters()).device
        speaker = self.speaker_embedding(references)  # (1, S)
        z = self.encode_content(src.to(device)[None]).z
        return self.decode(z, speaker, length=src.shape[-1])[0]

    # -- saving and loading --------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``, each atomically.

        The one saved-model format (:mod:`seqae.core.saving`), with the feature settings as the
        extra ``features`` (and :attr:`training_speakers`, when recorded, as the extra
        ``training_speakers``); the weights include the feature normaliser's statistics.
        """
        extras: dict[str, Any] = {"features": self.feature_config.to_dict()}
        if self.training_speakers is not None:
            extras["training_speakers"] = list(self.training_speakers)
        return save_model_files(
            self, directory, model_type=self.model_type, config=self.config, extras=extras
        )

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
    ) -> VoiceConversionModel:
        """Load a model of this class saved by :meth:`save_pretrained` (or by older seqae).

        On :class:`VoiceConversionModel` itself, loads whichever voice-conversion model the
        folder holds (:func:`load_vc_model`).

        Args:
            directory: The saved folder.
            map_location: Device to load the weights onto.

        Raises:
            SavedModelError: (a ``ValueError``) a missing folder or file (then also a
                ``FileNotFoundError``), corrupt files, a model of another type, a newer format,
                or weights of another model (naming the missing, unexpected and mis-shaped
                tensors). The feature settings are the caller's to compare
                (``check_same_features(model.feature_config, ...)``).
        """
        if cls is VoiceConversionModel:
            return load_vc_model(directory, map_location=map_location)
        saved = read_model_config(directory, expected=(cls.model_type,))
        config = _config_with_features(saved)
        try:
            model = cls.from_config(config)
        except (TypeError, KeyError, ValueError) as exc:
            raise SavedModelError(
                f"{saved.directory / CONFIG_NAME}: cannot build a {saved.model_type} model "
                f"from it: {exc}"
            ) from exc
        load_weights_strict(model, saved.weights_path, map_location=map_location)
        model.training_speakers = _training_speakers(saved)
        return model.to(map_location)


def _training_speakers(saved: SavedModel) -> list[str] | None:
    """The extra ``training_speakers`` (a list of voice names), checked; ``None`` when absent."""
    speakers = saved.extras.get("training_speakers")
    if speakers is None:
        return None
    if not isinstance(speakers, list) or not all(isinstance(s, str) and s for s in speakers):
        raise SavedModelError(
            f'{saved.directory / CONFIG_NAME}: "training_speakers" must be a list of voice '
            f"names, got {speakers!r}"
        )
    return list(speakers)


def _config_with_features(saved: SavedModel) -> dict[str, Any]:
    """The saved constructor config, its ``feature_config`` checked against the ``features`` extra."""
    config = dict(saved.config)
    features = saved.extras.get("features")
    if features is not None:
        config.setdefault("feature_config", features)
        if FeatureConfig.from_dict(config["feature_config"]) != FeatureConfig.from_dict(features):
            raise SavedModelError(
                f'{saved.directory / CONFIG_NAME}: "features" disagrees with '
                'config["feature_config"]'
            )
    return config


def load_vc_model(
    directory: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> VoiceConversionModel:
    """Load a saved voice-conversion model, whichever the registry kind ``vc_model`` knows.

    The folder's ``model_type`` picks the class (``seqae.registry.get("vc_model", model_type)``),
    whose ``from_pretrained`` loads it.

    Raises:
        SavedModelError: (a ``ValueError``) the folder holds another kind of model (an
            autoencoder, a vocoder, ...) or cannot be loaded; see
            :meth:`VoiceConversionModel.from_pretrained`. A missing folder or file is also a
            ``FileNotFoundError``.
    """
    from seqae import registry  # imported late: the registry loads the plugin that imports this

    saved = read_model_config(directory)
    known = registry.names(VC_MODEL_KIND)
    if saved.model_type not in known:
        raise SavedModelError(
            f"{saved.directory} holds a {saved.model_type!r} model, not a voice-conversion model "
            f"(expected one of: {', '.join(known)})"
        )
    cls = registry.get(VC_MODEL_KIND, saved.model_type)
    return cls.from_pretrained(saved.directory, map_location=map_location)
