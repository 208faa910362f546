"""The demo's tabs as plain Python: what each handler returns, and the one-line messages it
gives for bad input (the browser tests check the same through the page)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from demo_runs import RATE, vowels, write_wav

from seqae.demo.cache import ModelCache
from seqae.demo.codes import CodesTab
from seqae.demo.digits import MAX_SLIDERS, SMALL, interpolation_strips, prior_samples
from seqae.demo.discovery import FoundModel, find_models
from seqae.demo.errors import DemoInputError, shown_in_page
from seqae.demo.images import GAP_GREY, grid_image, mel_image, moon_phase_strips
from seqae.demo.latent import LatentTab
from seqae.demo.limits import MAX_ARTICLE_CHARS, MAX_AUDIO_SECONDS, MAX_SENTENCE_WORDS
from seqae.demo.tree import TreeTab, tree_svg
from seqae.extras import missing_modules
from seqae.tree.trees import brackets_to_spans

needs_audio = pytest.mark.skipif(bool(missing_modules("audio")), reason="needs seqae[audio]")
needs_text = pytest.mark.skipif(bool(missing_modules("text")), reason="needs seqae[text]")


@pytest.fixture(scope="module")
def found(tiny_runs: Path) -> dict[str, list[FoundModel]]:
    return find_models(tiny_runs)


@pytest.fixture(scope="module")
def cache() -> ModelCache:
    return ModelCache()


# -- errors -----------------------------------------------------------------------------------
def test_an_input_error_reaches_the_page_as_one_escaped_line() -> None:
    import gradio as gr

    @shown_in_page
    def handler(x: int) -> int:
        raise DemoInputError(f"<b>{x}</b> is wrong\nsecond line")

    with pytest.raises(gr.Error) as err:
        handler(3)
    assert err.value.message == html.escape("<b>3</b> is wrong")


def test_a_bug_reaches_the_page_as_one_line_and_the_log_gets_the_traceback(capsys) -> None:
    import gradio as gr

    @shown_in_page
    def handler() -> None:
        raise KeyError("oops")

    with pytest.raises(gr.Error, match="internal error") as err:
        handler()
    assert "KeyError" in err.value.message and "\n" not in err.value.message
    assert "Traceback" in capsys.readouterr().err


# -- images -----------------------------------------------------------------------------------
def test_digit_grids_draw_ink_dark_with_grey_gaps() -> None:
    images = torch.zeros(3, 64)
    images[1] = 1.0  # all ink
    grid = grid_image(images, ncol=2, scale=2)
    assert grid.dtype == np.uint8 and grid.shape == (2 * 17, 2 * 17)
    assert (grid[:16, :16] == 255).all() and (grid[:16, 18:] == 0).all()
    assert (grid[16:18, :] == GAP_GREY).all() and (grid[18:, 18:] == GAP_GREY).all()


def test_the_moon_phases_go_from_full_to_half_and_the_blend_is_no_phase() -> None:
    strips = moon_phase_strips(5, size=20, scale=1)
    assert strips.shape == (2 * 21 - 1, 5 * 21 - 1)
    tile = lambda row, k: strips[row * 21 : row * 21 + 20, k * 21 : k * 21 + 20]  # noqa: E731
    lit = lambda image: int((image == 255).sum())  # noqa: E731
    phases = [lit(tile(0, k)) for k in range(5)]
    assert phases == sorted(phases, reverse=True) and phases[-1] < 0.6 * phases[0]
    assert (tile(1, 0) == tile(0, 0)).all() and (tile(1, 4) == tile(0, 4)).all()
    middle = tile(1, 2)
    assert ((middle > 0) & (middle < 255)).any()  # the ghost of the full moon: grey


def test_a_mel_image_has_low_frequencies_at_the_bottom() -> None:
    mel = torch.full((4, 6), -10.0)
    mel[0] = 0.0  # the lowest band loud
    image = mel_image(mel, vmin=-10.0, vmax=0.0, row_scale=2, col_scale=3)
    assert image.shape == (8, 18, 3)
    assert image[-1].sum() > image[0].sum()


# -- latent space (VAE) ------------------------------------------------------------------------
def test_the_sliders_decode_a_digit_and_moving_one_changes_it(found, cache) -> None:
    tab = LatentTab(found["vae"], cache)
    assert tab.latent_dim("vae_digits") == 3
    still = tab.decode("vae_digits", 0.0, 0.0, 0.0)
    moved = tab.decode("vae_digits", 2.5, 0.0, 0.0)
    assert still.shape == moved.shape and still.dtype == np.uint8
    assert not np.array_equal(still, moved)
    assert np.array_equal(tab.decode("vae_digits", *[0.0] * MAX_SLIDERS), still)  # extra: ignored


def test_a_test_digit_sets_the_sliders_to_its_posterior_mean(found, cache) -> None:
    tab = LatentTab(found["vae"], cache)
    values = tab.posterior_mean("vae_digits", 5)
    assert len(values) == MAX_SLIDERS and values[3:] == [0.0] * (MAX_SLIDERS - 3)
    model = tab.digits.model("vae_digits")
    x = tab.digits.test_digit("vae_digits", 5)[None]
    mu, _ = model.bottleneck.posterior(model.encoder(x))
    assert values[:3] == pytest.approx(mu[0].clamp(-3, 3).tolist(), abs=0.006)
    with pytest.raises(DemoInputError, match="test digit 100000 does not exist; choose 0 to"):
        tab.posterior_mean("vae_digits", 100_000)


def test_the_strips_between_two_digits_end_at_their_reconstructions(found, cache) -> None:
    tab = LatentTab(found["vae"], cache)
    model = tab.digits.model("vae_digits")
    x_a, x_b = (tab.digits.test_digit("vae_digits", i) for i in (0, 1))
    strips = interpolation_strips(model, x_a, x_b, 4)
    assert set(strips) == {"pixels", "linear", "spherical"}
    side = SMALL * 8
    ends = grid_image(model.reconstruct(torch.stack([x_a, x_b])), ncol=2, scale=SMALL)
    for key in ("linear", "spherical"):
        strip = strips[key]
        assert strip.shape == (side, 4 * side + 3 * SMALL)
        assert np.array_equal(strip[:, :side], ends[:, :side])
        assert np.array_equal(strip[:, -side:], ends[:, -side:])
    pixels_a = grid_image(x_a[None], ncol=1, scale=SMALL)
    assert np.array_equal(strips["pixels"][:, :side], pixels_a)
    with pytest.raises(DemoInputError, match="at least 2 steps"):
        interpolation_strips(model, x_a, x_b, 1)


def test_prior_samples_repeat_by_seed_and_leave_the_global_random_state(found, cache) -> None:
    model = LatentTab(found["vae"], cache).digits.model("vae_digits")
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = prior_samples(model, 8, seed=1)
    assert torch.rand(1) == before
    assert np.array_equal(first, prior_samples(model, 8, seed=1))
    assert not np.array_equal(first, prior_samples(model, 8, seed=2))


def test_an_unknown_model_name_is_one_line(found, cache) -> None:
    with pytest.raises(DemoInputError, match="no model 'nope' here; choose one of vae_digits"):
        LatentTab(found["vae"], cache).decode("nope", 0.0)


# -- VQ-VAE codes -----------------------------------------------------------------------------
def test_codes_decode_and_a_click_on_the_codebook_finds_its_code(found, cache) -> None:
    from seqae.demo.codes import BOOK_COLUMNS, BOOK_SCALE

    tab = CodesTab(found["vqvae"], cache)
    assert tab.shape("vqvae") == (2, 8)
    book = tab.codebook("vqvae")
    step = 9 * BOOK_SCALE  # an 8-pixel tile and its gap
    assert book.shape == (8 * BOOK_SCALE, BOOK_COLUMNS * step - BOOK_SCALE)
    # tile k is the digit with code k at every position
    big = tab.decode("vqvae", 3, 3)  # 24 screen pixels per digit pixel
    tile = book[:, 3 * step : 3 * step + 8 * BOOK_SCALE]
    assert np.array_equal(big[:: 24 // BOOK_SCALE, :: 24 // BOOK_SCALE], tile)
    assert tab.code_at("vqvae", 3 * step + 5, 7) == 3
    assert tab.code_at("vqvae", 3 * step - 2, 7) is None  # the gap before tile 3
    assert tab.code_at("vqvae", 9 * step + 1, 1) is None  # past the 8 codes
    assert not np.array_equal(tab.decode("vqvae", 0, 0), tab.decode("vqvae", 0, 5))
    with pytest.raises(
        DemoInputError, match="code 8 does not exist: the codebook has codes 0 to 7"
    ):
        tab.decode("vqvae", 8, 0)


def test_a_vq_vae_samples_one_code_per_position(found, cache) -> None:
    model = CodesTab(found["vqvae"], cache).digits.model("vqvae")
    grid = prior_samples(model, 4, seed=0, positions=(2,))
    assert grid.shape == (8 * SMALL, 8 * 9 * SMALL - SMALL)  # one row of 8 cells
    assert not np.array_equal(grid, prior_samples(model, 4, seed=1, positions=(2,)))


def test_a_test_digit_gives_its_own_codes(found, cache) -> None:
    tab = CodesTab(found["vqvae"], cache)
    codes = tab.codes_of("vqvae", 2)
    assert len(codes) == MAX_SLIDERS and codes[2:] == [0] * (MAX_SLIDERS - 2)
    model = tab.digits.model("vqvae")
    x = tab.digits.test_digit("vqvae", 2)[None]
    assert codes[:2] == model.encode(x).info["indices"].reshape(-1).tolist()
    expected = grid_image(model.reconstruct(x), ncol=1, scale=24)
    assert np.array_equal(tab.decode("vqvae", *codes), expected)


# -- trees ------------------------------------------------------------------------------------
def test_a_sentence_is_parsed_and_drawn_with_its_own_words(found, cache) -> None:
    tab = TreeTab(found["tree"], cache)
    drawing, brackets, note = tab.tree("tree_ae", "the dog saw a (cat)")
    spans, leaves = brackets_to_spans(brackets)
    assert leaves == ["the", "dog", "saw", "a", "-LRB-cat-RRB-"]  # Penn spelling for the model
    assert len(spans) == 2 * 5 - 1
    assert drawing.count("<circle") == 4 and drawing.count("<text") == 5
    assert "(cat)" in drawing  # drawn as typed
    assert note is None


def test_the_one_word_long_and_empty_sentences(found, cache) -> None:
    tab = TreeTab(found["tree"], cache)
    drawing, brackets, _ = tab.tree("tree_ae", "dog")
    assert brackets == "dog" and drawing.count("<circle") == 0
    _, _, note = tab.tree("tree_ae", " ".join(["dog"] * 8))
    assert note == "8 words: longer than the 6 the model trained on; parsed anyway"
    with pytest.raises(DemoInputError, match="type a sentence first"):
        tab.tree("tree_ae", "   ")
    words = " ".join(["dog"] * (MAX_SENTENCE_WORDS + 1))
    with pytest.raises(DemoInputError, match=f"at most {MAX_SENTENCE_WORDS} are parsed"):
        tab.tree("tree_ae", words)


def test_the_tree_drawing_escapes_words() -> None:
    svg = tree_svg(["<b>", "&"], [(0, 1), (0, 0), (1, 1)])
    assert "&lt;b&gt;" in svg and "&amp;" in svg and "<b>" not in svg


# -- summaries --------------------------------------------------------------------------------
@needs_text
def test_every_summarizer_summarizes_side_by_side(found, cache) -> None:
    from seqae.demo.text import COLUMNS, TextTab

    tab = TextTab(found["summarizer"], cache)
    article = "the zebra sat on the mat and the cat ran ."
    rows, note = tab.summaries(article)
    # the full models first (by name), the no-discriminator ablation after them
    assert [r[0] for r in rows] == ["summary_ae", "summary_ppo", "summary_ae_nodisc"]
    assert [r[1] for r in rows] == [
        "reinforce, with discriminator",
        "PPO, span",
        "reinforce, no discriminator",
    ]
    for row in rows[::2]:
        assert len(row) == len(COLUMNS)
        assert 0 < row[3] <= 5 and re.fullmatch(r"\d+%", row[4]) and re.fullmatch(r"\d+%", row[5])
    policy_row = rows[1]  # a span of the article's words, of at most 5 words
    assert len(policy_row) == len(COLUMNS) and policy_row[3] <= 5
    assert policy_row[2] in article and policy_row[5] == "0%"
    assert note is None
    _, note = tab.summaries(" ".join(["cat"] * 20))
    assert note == (
        "The article is long: summary_ae read its first 12 words; summary_ppo read its first 12 "
        "words; summary_ae_nodisc read its first 12 words."
    )


@needs_text
def test_an_empty_or_too_long_article_is_one_line(found, cache) -> None:
    from seqae.demo.text import TextTab

    tab = TextTab(found["summarizer"], cache)
    with pytest.raises(DemoInputError, match="paste an article first"):
        tab.summaries("  \n ")
    with pytest.raises(DemoInputError, match=f"at most {MAX_ARTICLE_CHARS:,} are accepted"):
        tab.summaries("a" * (MAX_ARTICLE_CHARS + 1))


# -- voice conversion -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def voice_tab(found, cache):
    from seqae.demo.vc import VoiceTab

    return VoiceTab(found["vc"], found["vocoder"], cache)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("uploads")
    text = folder / "notes.wav"
    text.write_text("this is not audio\n")
    return {
        "source": write_wav(folder / "me.wav", vowels(2.0, f0=130.0, seed=5)),
        "reference": write_wav(folder / "you.wav", vowels(1.2, f0=240.0, seed=6)),
        "silent": write_wav(folder / "silent.wav", np.zeros(RATE, np.float32)),
        "short": write_wav(folder / "short.wav", vowels(0.2, f0=130.0)),
        "long": write_wav(folder / "long.wav", vowels(MAX_AUDIO_SECONDS + 1, f0=130.0)),
        "text": text,
    }


@needs_audio
def test_the_corpus_voices_are_offered_with_their_roles(voice_tab) -> None:
    assert voice_tab.voices("vc") == [("high (unseen)", "high"), ("low", "low")]
    # references of a voice are its held-out sentences
    assert [p.name for p in voice_tab.voice_files("vc", "low")] == ["low_002.wav", "low_003.wav"]
    rate, samples = voice_tab.sample("vc", "high")
    assert rate == RATE and samples.ndim == 1 and 1.4 * RATE < len(samples) < 1.6 * RATE
    assert voice_tab.sample("vc", None) is None
    with pytest.raises(DemoInputError, match="the voice 'nobody' is not in this model's corpus"):
        voice_tab.voice_files("vc", "nobody")


@needs_audio
@pytest.mark.parametrize("vocoder", ["Griffin-Lim (no training)", "vocoder"])
def test_a_conversion_is_as_long_as_its_source_with_three_mels(voice_tab, wavs, vocoder) -> None:
    import soundfile as sf

    out, *mels = voice_tab.convert(
        "vc", vocoder, str(wavs["source"]), None, str(wavs["reference"]), None
    )
    audio, rate = sf.read(out)
    assert rate == RATE and abs(len(audio) - 2.0 * RATE) <= 1
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 0.99 + 1 / 32768  # PCM16 step
    assert Path(out).name == "me_as_reference.wav"
    frames = [m.shape[1] for m in mels]
    assert frames[0] == frames[2] and frames[1] < frames[0]
    assert all(m.shape[0] == 160 and m.shape[2] == 3 for m in mels)


@needs_audio
def test_a_corpus_voice_is_a_target_and_uploads_take_precedence(voice_tab, wavs) -> None:
    gl = "Griffin-Lim (no training)"
    to_voice = voice_tab.convert("vc", gl, str(wavs["source"]), "high", None, None)
    assert Path(to_voice[0]).name == "me_as_high.wav"
    uploaded = voice_tab.convert(
        "vc", gl, str(wavs["source"]), "high", None, str(wavs["reference"])
    )
    assert Path(uploaded[0]).name == "me_as_reference.wav"
    assert not np.array_equal(to_voice[2], uploaded[2])  # the reference panels differ
    # the model and the converter were loaded once for all these conversions
    loads = voice_tab.cache.loads
    assert loads[("vc_model", voice_tab.models["vc"].path)] == 1
    assert loads[("converter", voice_tab.models["vc"].path, None)] == 1


@needs_audio
@pytest.mark.parametrize(
    ("source", "reference", "message"),
    [
        (None, "reference", "record or upload the source speech first"),
        ("text", "reference", r"the source \(notes.wav\): not a readable audio file"),
        ("silent", "reference", r"the source \(silent.wav\): silence only"),
        ("short", "reference", r"the source \(short.wav\): 0.200 s of audio is too short"),
        (
            "long",
            "reference",
            rf"the source \(long.wav\) is 31.0 s long; at most {MAX_AUDIO_SECONDS:g} s",
        ),
        ("source", "text", r"reference 1 \(notes.wav\): not a readable audio file"),
        ("source", None, "choose a target voice, or upload or record one or two references"),
    ],
)
def test_bad_audio_is_one_line_naming_the_upload(
    voice_tab, wavs, source, reference, message
) -> None:
    import gradio as gr

    convert = shown_in_page(voice_tab.convert)
    args = [None if k is None else str(wavs[k]) for k in (source, reference)]
    with pytest.raises(gr.Error) as err:
        convert("vc", "Griffin-Lim (no training)", args[0], None, args[1], None)
    assert re.match(message, html.unescape(err.value.message))
    assert "\n" not in err.value.message and str(wavs["text"].parent) not in err.value.message
