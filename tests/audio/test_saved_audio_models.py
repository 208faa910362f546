"""Saved voice models and vocoders: folders written by the old audio code still load, and the
registry kind ``vc_model`` is the one lookup (a model a plugin registers at runtime is found)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor, nn

import seqae
from seqae import registry
from seqae.audio.adain_vc import AdaINVC
from seqae.audio.features import FeatureConfig, FeatureNormalizer
from seqae.audio.neural_vocoder import ISTFTVocoder, load_vocoder
from seqae.audio.vc_base import VCOutput, VoiceConversionModel, load_vc_model
from seqae.core.base import BottleneckOutput

FEATURES_80 = {
    "sample_rate": 16000,
    "n_fft": 1024,
    "win_length": 1024,
    "hop_length": 256,
    "n_mels": 80,
    "f_min": 0.0,
    "f_max": 8000.0,
    "log_floor": 1e-05,
}
FEATURES_40 = {**FEATURES_80, "n_mels": 40}

# config.json exactly as the audio code wrote it before the one saved-model format (format 1):
# {"model_type", "config", "features", "format"}, the vocoder's config without feature_config
OLD_ADAIN_CONFIG = {
    "model_type": "adain_vc",
    "config": {
        "feature_config": FEATURES_80,
        "channels": 8,
        "content_dim": 4,
        "speaker_dim": 8,
        "n_blocks": 2,
        "kernel_size": 5,
        "strides": [1, 2],
        "speaker_channels": 8,
        "speaker_blocks": 1,
        "speaker_strides": None,
        "dropout": 0.0,
        "activation": "leaky_relu",
        "postnet_layers": 0,
    },
    "features": FEATURES_80,
    "format": 1,
}
OLD_VOCODER_CONFIG = {
    "model_type": "istft_vocoder",
    "config": {
        "channels": 8,
        "n_blocks": 1,
        "hidden_mult": 2,
        "kernel_size": 3,
        "layer_scale": 0.1,
        "max_log_magnitude": 4.6,
    },
    "features": FEATURES_40,  # not the default: the vocoder must take its features from here
    "format": 1,
}


def write_old_folder(directory: Path, document: dict, module: nn.Module) -> Path:
    """A folder as the old ``save_pretrained_files`` wrote it: indented JSON + safetensors."""
    directory.mkdir(parents=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(tensors, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps(document, indent=2) + "\n")
    return directory


@pytest.fixture
def old_adain(tmp_path: Path) -> tuple[Path, AdaINVC]:
    torch.manual_seed(3)
    old = OLD_ADAIN_CONFIG["config"]
    model = AdaINVC(
        channels=old["channels"],
        content_dim=old["content_dim"],
        speaker_dim=old["speaker_dim"],
        n_blocks=old["n_blocks"],
        strides=tuple(old["strides"]),
        speaker_channels=old["speaker_channels"],
        speaker_blocks=old["speaker_blocks"],
        speaker_strides=None,
    )
    model.normalizer.mean.fill_(-4.0)
    model.normalizer.std.fill_(1.5)
    return write_old_folder(tmp_path / "old_vc", OLD_ADAIN_CONFIG, model), model.eval()


@pytest.fixture
def old_vocoder(tmp_path: Path) -> tuple[Path, ISTFTVocoder]:
    torch.manual_seed(4)
    vocoder = ISTFTVocoder(
        FeatureConfig(n_mels=40), channels=8, n_blocks=1, hidden_mult=2, kernel_size=3
    )
    vocoder.normalizer.mean.fill_(-5.0)
    return write_old_folder(tmp_path / "old_vocoder", OLD_VOCODER_CONFIG, vocoder), vocoder.eval()


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("how", ["load_vc_model", "AdaINVC.from_pretrained", "load_pretrained"])
def test_old_format_voice_model_loads(old_adain: tuple[Path, AdaINVC], how: str) -> None:
    directory, original = old_adain
    load = {
        "load_vc_model": load_vc_model,
        "AdaINVC.from_pretrained": AdaINVC.from_pretrained,
        "load_pretrained": seqae.load_pretrained,
    }[how]
    loaded = load(directory).eval()
    assert type(loaded) is AdaINVC
    assert loaded.feature_config == FeatureConfig()
    assert loaded.config == OLD_ADAIN_CONFIG["config"]
    assert_same_weights(loaded, original)
    x = torch.randn(2, 80, 36)
    with torch.no_grad():
        assert torch.equal(loaded(x).recon, original(x).recon)


@pytest.mark.parametrize("how", ["load_vocoder", "ISTFTVocoder.from_pretrained", "load_pretrained"])
def test_old_format_vocoder_loads(old_vocoder: tuple[Path, ISTFTVocoder], how: str) -> None:
    directory, original = old_vocoder
    load = {
        "load_vocoder": load_vocoder,
        "ISTFTVocoder.from_pretrained": ISTFTVocoder.from_pretrained,
        "load_pretrained": seqae.load_pretrained,
    }[how]
    loaded = load(directory)
    assert type(loaded) is ISTFTVocoder and not loaded.training
    assert loaded.feature_config == FeatureConfig(n_mels=40)  # from the "features" entry
    assert_same_weights(loaded, original)
    mel = torch.randn(40, 12) - 5.0
    with torch.no_grad():
        assert torch.equal(loaded(mel), original(mel))


def test_old_format_folders_keep_their_kinds_apart(
    old_adain: tuple[Path, AdaINVC], old_vocoder: tuple[Path, ISTFTVocoder]
) -> None:
    with pytest.raises(ValueError, match="is not a vocoder: model_type 'adain_vc'"):
        load_vocoder(old_adain[0])
    with pytest.raises(ValueError, match="holds a 'istft_vocoder' model, not a voice-conversion"):
        load_vc_model(old_vocoder[0])


def test_an_old_folder_saved_again_is_in_the_current_format(
    old_adain: tuple[Path, AdaINVC], tmp_path: Path
) -> None:
    again = load_vc_model(old_adain[0]).save_pretrained(tmp_path / "again")
    document = json.loads((again / "config.json").read_text())
    assert document["format_version"] == 2 and "format" not in document
    assert document["config"] == OLD_ADAIN_CONFIG["config"]
    assert document["features"] == FEATURES_80
    assert_same_weights(load_vc_model(again), old_adain[1])


# -- a third-party model, registered at runtime ------------------------------------------------
class ToyVC(VoiceConversionModel):
    """A minimal voice-conversion model a plugin could add: 1x1 convs, a mean-pooled speaker."""

    model_type = "toy_vc_for_tests"

    def __init__(self, *, feature_config: dict | None = None, channels: int = 4) -> None:
        super().__init__()
        self.feature_config = FeatureConfig.from_dict(feature_config or {})
        self._record_config(locals())
        n = self.feature_config.n_mels
        self.speaker_dim, self.content_dim = 2, channels
        self.normalizer = FeatureNormalizer(n)
        self.content = nn.Conv1d(n, channels, 1)
        self.speaker = nn.Linear(n, 2)
        self.out = nn.Conv1d(channels + 2, n, 1)

    def encode_content(self, x: Tensor, lengths: Tensor | None = None) -> BottleneckOutput:
        return BottleneckOutput(self.content(x), x.new_zeros(()), {})

    def encode_speaker(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.speaker(x.mean(-1))

    def decode(self, z: Tensor, speaker: Tensor, *, length: int | None = None) -> Tensor:
        s = speaker.expand(z.shape[0], -1)[..., None].expand(-1, -1, z.shape[-1])
        return self.out(torch.cat([z, s], dim=1))[..., :length]

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> VCOutput:
        content, speaker = self.encode_content(x), self.encode_speaker(x)
        return VCOutput(self.decode(content.z, speaker), content, speaker)


@pytest.fixture
def toy_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register ToyVC through the public registry; the global tables are restored afterwards."""
    reg = registry.REGISTRY
    reg.names()  # load the plugins first, so the copies below hold the built-ins
    monkeypatch.setattr(reg, "_origin", dict(reg._origin))
    for kind in ("vc_model", "saved_model"):
        monkeypatch.setitem(reg._items, kind, dict(reg._items[kind]))
    registry.register("vc_model", ToyVC.model_type, ToyVC)
    registry.register("saved_model", ToyVC.model_type, ToyVC)


def test_runtime_registered_model_is_found_by_its_saved_model_type(
    toy_registered: None, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = ToyVC(feature_config=FEATURES_40, channels=3)
    directory = model.save_pretrained(tmp_path / "toy")
    for load in (load_vc_model, seqae.load_pretrained):
        loaded = load(directory)
        assert type(loaded) is ToyVC and loaded.config == model.config
        assert_same_weights(loaded, model)
    x = torch.randn(40, 10)
    torch.testing.assert_close(loaded.convert(x, [x]), model.convert(x, [x]))


def test_unregistered_model_type_is_refused(tmp_path: Path) -> None:
    directory = ToyVC().save_pretrained(tmp_path / "toy")
    with pytest.raises(ValueError, match="holds a 'toy_vc_for_tests' model, not a voice-conv"):
        load_vc_model(directory)


def test_vc_recipe_accepts_a_runtime_registered_model_name(
    toy_registered: None, tmp_path: Path
) -> None:
    from seqae.cli import find_config, find_recipe, load_recipe
    from seqae.config import load_config

    script = find_recipe("vc")
    recipe = load_recipe(script)
    cfg = load_config(find_config(str(script), "vc_tiny"))
    cfg["data"]["corpus"] = str(tmp_path / "corpus")
    cfg["model"]["name"] = ToyVC.model_type
    recipe.validate(cfg)  # no error: the name is registered
    cfg["model"]["name"] = "wavenet"
    with pytest.raises(ValueError, match=r"model.name must be one of .*toy_vc_for_tests"):
        recipe.validate(cfg)
