"""Voice-conversion models: shapes, gradients, save/load, conversion, disentanglement pieces."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import seqae
from seqae import registry
from seqae.audio import models
from seqae.audio.features import FeatureConfig
from seqae.audio.models import (
    VQVC,
    AdaINVC,
    AutoVC,
    SpeakerAdversary,
    SpeakerEncoder,
    VCOutput,
    length_mask,
    load_vc_model,
    masked_instance_norm,
)
from seqae.core.saving import SavedModelError

N_MELS = 80

TINY: dict[str, dict] = {
    "adain_vc": dict(
        channels=16,
        content_dim=4,
        speaker_dim=8,
        n_blocks=2,
        strides=(1, 2),
        speaker_channels=16,
        speaker_blocks=2,
        speaker_strides=(1, 2),
        postnet_layers=2,
    ),
    "vq_vc": dict(
        channels=16,
        content_dim=8,
        codebook_size=16,
        speaker_dim=8,
        n_blocks=2,
        strides=(2, 1),
    ),
    "autovc": dict(
        channels=16,
        neck_dim=4,
        freq=4,
        speaker_dim=8,
        n_blocks=1,
        lstm_hidden=16,
        speaker_channels=16,
        speaker_blocks=2,
        speaker_strides=(1, 2),
        postnet_layers=2,
    ),
}
MODEL_NAMES = list(TINY)


def tiny(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return registry.get("vc_model", name)(**TINY[name])


def smooth_mels(batch: int, frames: int, *, seed: int = 0) -> torch.Tensor:
    """Random-ish but smooth normalised log-mels: a few sinusoids in time and frequency."""
    g = torch.Generator().manual_seed(seed)
    f = torch.linspace(0, 1, N_MELS)[None, :, None]
    t = torch.linspace(0, 1, frames)[None, None, :]
    out = torch.zeros(batch, N_MELS, frames)
    for _ in range(3):
        a, kf, kt, ph = (torch.rand(4, batch, 1, 1, generator=g)).unbind(0)
        out += (a + 0.5) * torch.sin(
            2 * math.pi * (1 + 3 * kf) * f + 2 * math.pi * (1 + 4 * kt) * t + 6 * ph
        )
    return out / 1.5


def trained_vq(name: str, model: torch.nn.Module) -> None:
    """Run one training forward so a VQ codebook is k-means initialised (no-op otherwise)."""
    if name == "vq_vc":
        model.train()
        with torch.no_grad():
            model(smooth_mels(4, 64, seed=9))
    model.eval()


# -- shapes and gradients ----------------------------------------------------------------------
def test_registry_and_types() -> None:
    classes = {"adain_vc": AdaINVC, "vq_vc": VQVC, "autovc": AutoVC}
    assert set(registry.names("vc_model")) >= set(classes)
    for key, cls in classes.items():
        assert cls.model_type == key
        assert registry.get("vc_model", key) is cls
        assert registry.get("saved_model", key) is cls  # for seqae.load_pretrained
        built = registry.build("model", {"name": key, **TINY[key]})
        assert type(built) is cls and built.config["channels"] == TINY[key]["channels"]


def test_models_module_re_exports_the_split_files() -> None:
    from seqae.audio import adain_vc, adversary, autovc, blocks, vc_base, vq_vc

    assert not hasattr(models, "VC_MODELS")
    split = (adain_vc, adversary, autovc, blocks, vc_base, vq_vc)
    for name in models.__all__:  # each public name is one split file's own object
        homes = [m for m in split if name in getattr(m, "__all__", ())]
        assert len(homes) == 1 and getattr(homes[0], name) is getattr(models, name), name
    assert models.AdaINVC is adain_vc.AdaINVC and models.load_vc_model is vc_base.load_vc_model
    assert models.SpeakerAdversary is adversary.SpeakerAdversary
    assert models.length_mask is blocks.length_mask


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("frames", [37, 50, 128])
def test_forward_shapes(name: str, frames: int) -> None:
    model = tiny(name)
    x = torch.randn(3, N_MELS, frames)
    out = model(x)
    assert isinstance(out, VCOutput)
    assert out.recon.shape == x.shape
    stride = model.total_stride
    assert out.content.z.shape == (3, model.content_dim, math.ceil(frames / stride))
    assert out.speaker.shape == (3, model.speaker_dim)
    assert out.content.loss.dim() == 0 and torch.isfinite(out.content.loss)
    # decode without length gives the padded length; with length the input's
    z, s = model.encode_content(x).z, model.encode_speaker(x)
    assert model.decode(z, s).shape[-1] == z.shape[-1] * stride
    assert model.decode(z, s, length=frames).shape == x.shape
    assert model.decode(z, s[:1], length=frames).shape == x.shape  # one speaker broadcast


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_backward_gives_finite_grads_on_all_params(name: str) -> None:
    model = tiny(name).train()
    x = smooth_mels(4, 50)
    out = model(x)
    loss = F.mse_loss(out.recon, x) + 0.1 * out.content.loss
    loss.backward()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{pname} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_bad_inputs_are_refused(name: str) -> None:
    model = tiny(name)
    with pytest.raises(ValueError, match=r"\(batch, 80, frames\)"):
        model(torch.randn(2, 40, 30))
    with pytest.raises(ValueError, match="lengths"):
        model.encode_speaker(torch.randn(2, N_MELS, 30), torch.tensor([30, 31]))
    z = model.encode_content(torch.randn(2, N_MELS, 32)).z
    with pytest.raises(ValueError, match="speaker embeddings for a batch"):
        model.decode(z, torch.randn(3, model.speaker_dim))
    with pytest.raises(ValueError, match="length"):
        model.decode(z, torch.randn(2, model.speaker_dim), length=10_000)


# -- config and save/load ------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_config_round_trip_and_unknown_key(name: str) -> None:
    model = tiny(name)
    config = json.loads(json.dumps(model.config))  # JSON-able
    assert config["feature_config"] == FeatureConfig().to_dict()
    again = type(model).from_config(config)
    assert again.config == model.config
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['chanels'\]"):
        type(model).from_config({**config, "chanels": 3})


def test_feature_config_sets_n_mels() -> None:
    fc = FeatureConfig(n_mels=40)
    model = AdaINVC(**TINY["adain_vc"], feature_config=fc)
    assert model.feature_config == fc and model.normalizer.mean.shape == (40,)
    assert model(torch.randn(2, 40, 33)).recon.shape == (2, 40, 33)
    again = AdaINVC.from_config(json.loads(json.dumps(model.config)))
    assert again.feature_config == fc


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_save_load_round_trip(name: str, tmp_path: Path) -> None:
    model = tiny(name)
    model.normalizer.mean.fill_(-3.0)
    model.normalizer.std.fill_(2.0)
    trained_vq(name, model)
    x = torch.randn(2, N_MELS, 45)
    with torch.no_grad():
        expected = model(x)
    directory = model.save_pretrained(tmp_path / "m")
    saved = json.loads((directory / "config.json").read_text())
    assert saved["model_type"] == name and saved["format_version"] == 2
    assert saved["seqae_version"] == seqae.__version__ and "format" not in saved
    assert saved["features"] == model.feature_config.to_dict()
    assert saved["config"] == model.config
    loaders = {
        "load_vc_model": load_vc_model,
        "from_pretrained": type(model).from_pretrained,
        "base from_pretrained": models.VoiceConversionModel.from_pretrained,
        "seqae.load_pretrained": seqae.load_pretrained,
    }
    for how, load in loaders.items():
        loaded = load(directory).eval()
        assert type(loaded) is type(model), how
        assert torch.equal(loaded.normalizer.mean, model.normalizer.mean), how
        with torch.no_grad():
            got = loaded(x)
        assert torch.equal(got.recon, expected.recon), how
        assert torch.equal(got.content.z, expected.content.z), how
        assert torch.equal(got.speaker, expected.speaker), how


def copy_bare_weights(source: Path, target: Path) -> None:
    """Put ``source``'s tensors in ``target`` without seqae's metadata (as other tools write
    safetensors), so that only the tensors themselves can tell the models apart."""
    save_file(load_file(str(source / "model.safetensors")), str(target / "model.safetensors"))


def test_loading_other_weights_or_files_fails_clearly(tmp_path: Path) -> None:
    adain = tiny("adain_vc").save_pretrained(tmp_path / "adain")
    vq = tiny("vq_vc").save_pretrained(tmp_path / "vq")
    copy_bare_weights(adain, vq)
    with pytest.raises(ValueError, match=r"different model(.|\n)*missing: (.|\n)*unexpected: "):
        load_vc_model(vq)
    # same model type, other sizes: names the mis-shaped tensors
    wide = AdaINVC(**{**TINY["adain_vc"], "channels": 24}).save_pretrained(tmp_path / "wide")
    copy_bare_weights(adain, wide)
    with pytest.raises(ValueError, match=r"wrong shape: .*saved \(16,"):
        load_vc_model(wide)
    with pytest.raises(FileNotFoundError, match="nothing does not exist; expected a folder"):
        load_vc_model(tmp_path / "nothing")
    (adain / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors not found"):
        load_vc_model(adain)
    cfg = json.loads((vq / "config.json").read_text())
    (vq / "config.json").write_text(json.dumps({**cfg, "model_type": "wavenet"}))
    with pytest.raises(ValueError, match="holds a 'wavenet' model, not a voice-conversion model"):
        load_vc_model(vq)
    (vq / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_vc_model(vq)
    (wide / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_vc_model(wide)


def test_load_vc_model_refuses_other_kinds_of_model_in_one_line(tmp_path: Path) -> None:
    from seqae.audio.neural_vocoder import ISTFTVocoder
    from seqae.core.model import Autoencoder

    ae = Autoencoder.from_config(
        {
            "encoder": {"name": "mlp", "in_dim": 6, "hidden": [8], "out_dim": 4},
            "bottleneck": {"name": "identity"},
            "decoder": {"name": "mlp", "in_dim": 4, "hidden": [8], "out_dim": 6},
        }
    ).save_pretrained(tmp_path / "ae")
    vocoder = ISTFTVocoder(channels=8, n_blocks=1).save_pretrained(tmp_path / "voc")
    for directory, kind in ((ae, "autoencoder"), (vocoder, "istft_vocoder")):
        with pytest.raises(ValueError) as info:
            load_vc_model(directory)
        message = str(info.value)
        assert "\n" not in message
        assert f"holds a {kind!r} model, not a voice-conversion model" in message
        assert "adain_vc" in message and "vq_vc" in message and "autovc" in message
    # a class's own from_pretrained refuses the other voice-conversion models too
    vq = tiny("vq_vc").save_pretrained(tmp_path / "vq")
    with pytest.raises(ValueError, match="holds a 'vq_vc' model; expected 'adain_vc'"):
        AdaINVC.from_pretrained(vq)


def test_training_speakers_are_saved_and_checked(tmp_path: Path) -> None:
    """The voices a model was trained on go with it (the extra ``training_speakers``); a folder
    without them loads with ``None``, and a malformed list is refused."""
    model = tiny("adain_vc")
    assert model.training_speakers is None
    plain = model.save_pretrained(tmp_path / "plain")
    assert "training_speakers" not in json.loads((plain / "config.json").read_text())
    assert load_vc_model(plain).training_speakers is None
    model.training_speakers = ["kal16", "slt"]
    directory = model.save_pretrained(tmp_path / "m")
    for load in (load_vc_model, seqae.load_pretrained, models.AdaINVC.from_pretrained):
        assert load(directory).training_speakers == ["kal16", "slt"]
    document = json.loads((directory / "config.json").read_text())
    for bad in ("kal16", ["kal16", 3], [""]):
        document["training_speakers"] = bad
        (directory / "config.json").write_text(json.dumps(document))
        with pytest.raises(SavedModelError, match='"training_speakers" must be a list'):
            load_vc_model(directory)


def test_saved_features_must_agree_with_the_config(tmp_path: Path) -> None:
    directory = tiny("adain_vc").save_pretrained(tmp_path / "m")
    cfg = json.loads((directory / "config.json").read_text())
    cfg["features"] = FeatureConfig(n_mels=40).to_dict()
    (directory / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match='"features" disagrees with config'):
        load_vc_model(directory)


# -- conversion and the speaker embedding ---------------------------------------------------------
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_convert_with_one_and_two_references(name: str) -> None:
    model = tiny(name)
    trained_vq(name, model)
    src = smooth_mels(1, 41, seed=1)[0]
    ref_a, ref_b = smooth_mels(1, 30, seed=2)[0], smooth_mels(1, 57, seed=3)[0]
    one = model.convert(src, [ref_a])
    assert one.shape == src.shape and torch.isfinite(one).all()
    assert torch.equal(model.convert(src[None], [ref_a[None]]), one)  # (1, n_mels, T) accepted
    two = model.convert(src, [ref_a, ref_b])
    assert two.shape == src.shape
    with torch.no_grad():
        spk = (model.encode_speaker(ref_a[None]) + model.encode_speaker(ref_b[None])) / 2
        manual = model.decode(model.encode_content(src[None]).z, spk, length=41)[0]
    torch.testing.assert_close(two, manual)
    assert not torch.allclose(one, two)
    assert not model.training  # mode untouched
    model.train()
    model.convert(src, [ref_a])
    assert model.training
    with pytest.raises(ValueError, match="non-empty list"):
        model.convert(src, [])
    with pytest.raises(ValueError, match=r"references\[0\]"):
        model.convert(src, [torch.randn(3, N_MELS, 20)])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_speaker_embedding_depends_on_reference_not_on_padding(name: str) -> None:
    model = tiny(name)
    trained_vq(name, model)
    a, b = smooth_mels(1, 40, seed=4)[0], smooth_mels(1, 64, seed=5)[0]
    batch = torch.randn(2, N_MELS, 70) * 5  # padding holds garbage, not zeros
    batch[0, :, :40], batch[1, :, :64] = a, b
    with torch.no_grad():
        padded = model.encode_speaker(batch, torch.tensor([40, 64]))
        alone = torch.cat([model.encode_speaker(a[None]), model.encode_speaker(b[None])])
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-4)
    assert (alone[0] - alone[1]).abs().max() > 1e-3  # depends on the reference


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_decoder_output_changes_with_speaker_only(name: str) -> None:
    model = tiny(name).eval()
    x = smooth_mels(1, 48, seed=6)
    with torch.no_grad():
        z = model.encode_content(x).z
        s1 = model.encode_speaker(x)
        y1, y1_again = model.decode(z, s1), model.decode(z, s1.clone())
        y2 = model.decode(z, s1 + torch.randn_like(s1))
    assert torch.equal(y1, y1_again)
    assert (y1 - y2).abs().mean() > 1e-3


def test_speaker_encoder_is_shared_code() -> None:
    assert isinstance(tiny("adain_vc").speaker_encoder, SpeakerEncoder)
    assert isinstance(tiny("autovc").speaker_encoder, SpeakerEncoder)


# -- model-specific properties ------------------------------------------------------------------
def test_adain_content_code_ignores_per_bin_offset_but_not_gain() -> None:
    model = tiny("adain_vc").eval()
    x = smooth_mels(2, 50, seed=7)
    offset = torch.randn(1, N_MELS, 1) * 3  # e.g. a speaker's average spectral envelope
    gain = 1 + torch.rand(1, N_MELS, 1)
    with torch.no_grad():
        z = model.encode_content(x).z
        z_offset = model.encode_content(x + offset).z
        z_gain = model.encode_content(x * gain).z
    torch.testing.assert_close(z_offset, z, atol=1e-4, rtol=1e-4)
    assert (z_gain - z).abs().max() > 1e-3


def test_adain_content_is_gaussian_and_deterministic_in_eval() -> None:
    model = tiny("adain_vc")
    x = smooth_mels(2, 40)
    model.train()
    out1, out2 = model.encode_content(x), model.encode_content(x)
    assert not torch.equal(out1.z, out2.z)  # sampled
    assert "kl" in out1.info and out1.loss > 0
    model.eval()
    assert torch.equal(model.encode_content(x).z, model.encode_content(x).z)


def test_masked_instance_norm_matches_instance_norm() -> None:
    h = torch.randn(3, 5, 17)
    mask = length_mask(None, 3, 17, h.device)
    torch.testing.assert_close(masked_instance_norm(h, mask), F.instance_norm(h))
    mask = length_mask(torch.tensor([17, 9, 4]), 3, 17, h.device)
    out = masked_instance_norm(h, mask)
    torch.testing.assert_close(out[1, :, :9], F.instance_norm(h[1:2, :, :9])[0])
    assert out[2, :, 4:].abs().max() == 0


def test_vqvc_speaker_encoding_reads_codebook_without_updating() -> None:
    model = tiny("vq_vc")
    trained_vq("vq_vc", model)
    model.train()
    before = {k: v.clone() for k, v in model.vq.state_dict().items()}
    model.encode_speaker(smooth_mels(2, 40))
    for k, v in model.vq.state_dict().items():
        assert torch.equal(v, before[k]), k
    out = model(smooth_mels(2, 40))
    assert "perplexity" in out.content.info


def test_autovc_code_is_narrow_and_downsampled() -> None:
    model = tiny("autovc").eval()
    x = smooth_mels(1, 64)
    z = model.encode_content(x).z
    assert z.shape == (1, 8, 16)  # 2 * neck_dim channels, T / freq frames
    # conditioning the content encoder on another speaker changes the code
    z_other = model.encode_content(x, speaker=torch.randn(1, model.speaker_dim)).z
    assert not torch.allclose(z, z_other)


# -- speaker adversary -------------------------------------------------------------------------
def test_adversary_learns_separable_codes() -> None:
    torch.manual_seed(0)
    k, c = 4, 6
    adv = SpeakerAdversary(content_dim=c, num_speakers=k, hidden=32)
    ids = torch.arange(k).repeat(8)  # (32,)
    centres = torch.randn(k, c, 1) * 2

    def batch() -> torch.Tensor:
        return centres[ids] + 0.5 * torch.randn(len(ids), c, 12)

    opt = torch.optim.Adam(adv.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        cls_loss, _ = adv.loss(batch(), ids, weight=1.0)
        first = first if first is not None else cls_loss.item()
        opt.zero_grad()
        cls_loss.backward()
        opt.step()
    assert cls_loss.item() < first / 5
    assert (adv(batch()).argmax(-1) == ids).float().mean() > 0.9


def test_adversary_encoder_loss_reaches_encoder_only_through_code() -> None:
    model = tiny("adain_vc").train()
    adv = SpeakerAdversary(content_dim=model.content_dim, num_speakers=3, hidden=16)
    out = model(smooth_mels(3, 40))
    cls_loss, enc_loss = adv.loss(out.content.z, torch.tensor([0, 1, 2]), weight=0.5)
    assert enc_loss.item() >= -1e-6  # CE to uniform >= log K
    enc_loss.backward(retain_graph=True)
    assert all(p.grad is None for p in adv.parameters())  # the adversary is frozen here
    assert all(p.grad is None for p in model.decoder.parameters())
    assert all(p.grad is None for p in model.speaker_encoder.parameters())
    grads = [p.grad for p in model.content_encoder.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    model.zero_grad()
    cls_loss.backward()  # classifier loss trains the adversary only (code detached)
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is not None for p in adv.parameters())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_adversary_on_every_model_code(name: str) -> None:
    model = tiny(name).train()
    adv = SpeakerAdversary(content_dim=model.content_dim, num_speakers=5)
    out = model(smooth_mels(2, 33))
    logits = adv(out.content.z)
    assert logits.shape == (2, 5)
    lengths = torch.tensor([out.content.z.shape[-1], 3])
    assert adv(out.content.z, lengths).shape == (2, 5)


def test_adversary_rejects_bad_labels() -> None:
    adv = SpeakerAdversary(content_dim=4, num_speakers=3)
    with pytest.raises(ValueError, match="speaker_ids"):
        adv.loss(torch.randn(2, 4, 5), torch.tensor([0, 1, 2]), weight=1.0)
    with pytest.raises(ValueError, match=r"\(batch, 4, frames\)"):
        adv(torch.randn(2, 5, 5))


# -- learning --------------------------------------------------------------------------------------
def test_tiny_adain_vc_overfits_four_mels() -> None:
    torch.manual_seed(0)
    model = AdaINVC(**{**TINY["adain_vc"], "channels": 32, "content_dim": 8})
    x = smooth_mels(4, 48, seed=11)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        out = model(x)
        recon = F.mse_loss(out.recon, x)
        loss = recon + 1e-4 * out.content.loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(recon.item())
    assert min(losses[-5:]) < losses[0] / 5, (losses[0], losses[-5:])
