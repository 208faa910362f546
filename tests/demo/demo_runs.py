"""A tiny runs folder for the demo's tests, laid out as the recipes write theirs
(:func:`build_tiny_runs`), and speech-like test audio.

Untrained models at tiny sizes (random weights: the page's behaviour, not the models' quality,
is under test; the speech, text and tree models built by their recipes' own builders at their
``*_tiny.yaml`` sizes), each saved with ``save_pretrained`` into ``<runs>/<run>/model`` beside the
run's ``config.yaml``: a VAE and a VQ-VAE on the digits, a voice-conversion model with a small
speech corpus of synthesized vowels (two voices, one unseen) and a trained-vocoder folder, two
summarizers (the full model, the no-discriminator ablation and a PPO policy) with a text
corpus's test pairs,
and a tree parser with a tree corpus's test sentences. Built in a few seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
import yaml

from seqae.extras import missing_modules

RATE = 16000
TEXTS = [
    "the cat sat on the mat .",
    "the dog sat on the mat .",
    "a cat and a dog ran to the park .",
    "the park is big and the dog is small .",
]
TREE_SENTENCES = ["the dog saw a cat", "a cat slept", "the big dog chased the small cat"]


def vowels(seconds: float, *, f0: float, seed: int = 0) -> np.ndarray:
    """Speech-like test audio: a glottal pulse train at ``f0`` through two formant resonances
    that move every 0.25 s (a new vowel), float32 at 16 kHz."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    pulses = np.sign(np.sin(2 * np.pi * f0 * t * (1 + 0.02 * np.sin(2 * np.pi * 3 * t))))
    out = np.zeros(n)
    for start in range(0, n, RATE // 4):
        f1, f2 = rng.uniform(300, 800), rng.uniform(900, 2400)
        seg = slice(start, min(n, start + RATE // 4))
        tt = t[seg]
        out[seg] = pulses[seg] * (np.sin(2 * np.pi * f1 * tt) + 0.5 * np.sin(2 * np.pi * f2 * tt))
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    """Write 16-bit PCM, creating the folder."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, rate, subtype="PCM_16")
    return path


def tiny_config(recipe: str) -> dict:
    """The recipe's ``<recipe>_tiny.yaml`` config, resolved."""
    from seqae.cli import find_config
    from seqae.config import load_config

    return load_config(find_config(recipe, f"{recipe}_tiny"))


def recipe_module(name: str) -> ModuleType:
    """The recipe script ``recipes/<name>.py``, imported."""
    from seqae.cli import find_recipe, load_recipe

    return load_recipe(find_recipe(name))


def _run_folder(root: Path, name: str, config: dict) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run / "model"


def _digits_models(root: Path) -> None:
    from seqae.core import Autoencoder
    from seqae.core.vqvae import build_vqvae

    torch.manual_seed(0)
    data = {"seed": 0, "data": {"val_fraction": 0.1, "test_fraction": 0.2}}
    vae = Autoencoder.from_config(
        {
            "encoder": {"name": "mlp", "in_dim": 64, "hidden": [16], "out_dim": 16},
            "bottleneck": {"name": "gaussian", "in_dim": 16, "latent_dim": 3},
            "decoder": {"name": "mlp", "in_dim": 3, "hidden": [16], "out_dim": 64},
            "likelihood": "bernoulli",  # sigmoid means: random weights draw grey, not blank
        }
    )
    vae.save_pretrained(_run_folder(root, "vae_digits", data))
    model_cfg = {
        "codebook_size": 8,
        "code_dim": 4,
        "num_codes": 2,
        "hidden": [16],
        "channels": [4],
        "norm": None,
        "likelihood": "bernoulli",
    }
    quant_cfg = {"kmeans_init": False, "dead_code_threshold": 0.0}
    vq = build_vqvae(model_cfg, quant_cfg, torch.zeros(2, 64))
    vq.save_pretrained(_run_folder(root, "vqvae", data))
    identity = Autoencoder.from_config(  # a plain AE: no tab shows it
        {
            "encoder": {"name": "mlp", "in_dim": 64, "hidden": [], "out_dim": 4},
            "bottleneck": {"name": "identity"},
            "decoder": {"name": "mlp", "in_dim": 4, "hidden": [], "out_dim": 64},
        }
    )
    identity.save_pretrained(_run_folder(root, "ae_vs_pca", {}))


def _speech_models(root: Path) -> None:
    from seqae import registry
    from seqae.audio.features import log_mel
    from seqae.audio.neural_vocoder import ISTFTVocoder

    corpus = root / "speech_corpus"
    voices = {"low": (110.0, "train"), "high": (220.0, "unseen")}
    for k, (voice, (f0, _)) in enumerate(voices.items()):
        for i in (1, 2, 3):
            write_wav(
                corpus / "wav" / voice / f"{voice}_00{i}.wav", vowels(1.5, f0=f0, seed=k * 10 + i)
            )
    (corpus / "speakers.json").write_text(
        json.dumps({v: {"source": "test", "role": role} for v, (_, role) in voices.items()})
    )
    (corpus / "corpus.json").write_text(
        json.dumps({"format": 1, "sentences": {"train": ["001"], "test": ["002", "003"]}})
    )
    torch.manual_seed(0)
    model = registry.get("vc_model", "adain_vc")(**tiny_config("vc")["model"]["adain_vc"])
    model.normalizer.fit([log_mel(torch.from_numpy(vowels(2.0, f0=f0))) for f0 in (110, 220)])
    # the run names its corpus relative to where it ran, as recipes do (runs/speech_corpus)
    config = {"data": {"corpus": f"{root.name}/speech_corpus"}}
    model.save_pretrained(_run_folder(root, "vc", config))
    ISTFTVocoder(channels=8, n_blocks=1).save_pretrained(_run_folder(root, "vocoder", {}))


def _summarizers(root: Path) -> None:
    from seqae.text.summarize import save_summarizer
    from seqae.text.tokenizer import WordTokenizer

    corpus = root / "text_corpus"
    corpus.mkdir()
    pairs = [{"article": text, "summary": text.split()[1]} for text in TEXTS]
    (corpus / "test.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    tok = WordTokenizer.train(TEXTS, vocab_size=50, min_frequency=1)
    build, tiny = recipe_module("summary_ae").build_models, tiny_config("summary_ae")
    for name, weight in (("summary_ae", 1.0), ("summary_ae_nodisc", 0.0)):
        torch.manual_seed(len(name))
        generator = build(tiny, tok)["generator"]
        config = {
            "data": {"corpus": f"{root.name}/text_corpus"},
            "train": {"estimator": "reinforce"},
            "adversary": {"weight": weight},
        }
        save_summarizer(
            _run_folder(root, name, config), generator, tok, max_article_words=12, max_words=5
        )
    # summary_ppo's policy, reading the full model's encoder (random weights: a span of words)
    from seqae.text.env import GeneratorEncoder, observation_size
    from seqae.text.policy import SummaryPolicy
    from seqae.text.summarize import save_policy_summarizer

    policy = SummaryPolicy(
        obs_dim=observation_size(GeneratorEncoder(generator, tok)),
        net_arch=[8],
        actions="span",
        max_words=6,
        max_article_words=12,
    )
    folder = _run_folder(root, "summary_ppo", {"env": {"actions": "span"}})
    save_policy_summarizer(folder, policy, generator, tok, max_article_words=12, max_words=5)


def _tree_parser(root: Path) -> None:
    from seqae.data.tokens import Vocabulary
    from seqae.tree.parse import save_tree_parser

    corpus = root / "tree_corpus"
    corpus.mkdir()
    (corpus / "test.txt").write_text("".join(s + "\n" for s in TREE_SENTENCES))
    vocab = Vocabulary.build([s.split() for s in TREE_SENTENCES])
    torch.manual_seed(0)
    cfg = tiny_config("tree_ae")
    cfg["model"]["name"] = "urnng"
    model = recipe_module("tree_ae").build_model(cfg, vocab)
    config = {"data": {"corpus": f"{root.name}/tree_corpus"}}
    save_tree_parser(
        _run_folder(root, "tree_ae", config),
        model,
        vocab,
        lowercase=True,
        drop_punctuation=False,
        max_length=6,
    )


def build_tiny_runs(root: Path) -> Path:
    """Make ``root`` a runs folder holding one tiny model of every kind the demo shows (the
    audio and text ones only where their extras are installed)."""
    root.mkdir(parents=True)
    _digits_models(root)
    if not missing_modules("audio"):
        _speech_models(root)
    if not missing_modules("text"):
        _summarizers(root)
    _tree_parser(root)
    return root
