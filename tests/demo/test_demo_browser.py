"""The demo in a real headless browser (Debian's chromium and chromium-driver through
selenium): the app is started once on a free port with the tiny models, the browser once, and
each test drives the page as a person would. Skipped, saying why, only where chromium or
chromedriver is not installed (``scripts/setup.sh`` installs both)."""

from __future__ import annotations

import io
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from seqae.demo.browser import (
    BrowserMissingError,
    DemoPage,
    find_chromium,
    is_local,
    requested_urls,
)
from seqae.extras import missing_modules

if missing_modules("demo") or missing_modules("audio"):
    pytest.skip("the browser tests need seqae's demo and audio extras", allow_module_level=True)
try:
    find_chromium()
except BrowserMissingError as exc:
    pytest.skip(f"no headless browser here: {exc}", allow_module_level=True)

from demo_runs import RATE, vowels, write_wav  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

WAIT = 30  # seconds: a generous bound for a busy 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def url(tiny_runs: Path) -> Iterator[str]:
    from seqae.demo.app import build_app, launch_app

    app = build_app(tiny_runs)
    local = launch_app(app, port=free_port())
    yield local
    app.close()


@pytest.fixture(scope="module")
def page(url: str) -> Iterator[DemoPage]:
    """The browser, started once for the module, on the app's page."""
    from seqae.demo.browser import headless_chromium

    driver = headless_chromium(width=1280, height=1000)
    yield DemoPage(driver, url, wait=WAIT)
    driver.quit()


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("browser_uploads")
    text = folder / "letter.txt"
    text.write_text("Dear reader, this is a text file, not a recording.\n")
    disguised = folder / "letter.wav"
    disguised.write_bytes(text.read_bytes())
    return {
        "source": write_wav(folder / "source.wav", vowels(2.0, f0=130.0, seed=11)),
        "other": write_wav(folder / "other.wav", vowels(3.0, f0=160.0, seed=12)),
        "reference": write_wav(folder / "reference.wav", vowels(1.5, f0=230.0, seed=13)),
        "text": text,
        "disguised": disguised,
    }


def fetch_audio(href: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    with urllib.request.urlopen(href, timeout=WAIT) as response:  # a 127.0.0.1 URL
        return sf.read(io.BytesIO(response.read()))


def convert(page: DemoPage, source: Path, reference: Path) -> tuple[np.ndarray, int]:
    """Upload a source and a reference, press Convert, and fetch the result."""
    page.upload("vc-source", source)
    page.upload("vc-reference-1", reference)
    page.click("vc-convert")
    return fetch_audio(page.result_link())


def test_the_page_offers_every_tab_and_loads_nothing_from_elsewhere(page) -> None:
    requested_urls(page.driver)  # drop what came before
    page.open("Trees")
    assert page.tabs() == [
        "Voice conversion",
        "Latent space (VAE)",
        "VQ-VAE codes",
        "Summaries",
        "Trees",
    ]
    page.until(lambda _: page.css("#tree-drawing svg"), "the tree")
    assert "at most 20 MB" in page.text() and "at most 60 words" in page.text()  # the limits
    urls = requested_urls(page.driver)
    assert urls and [u for u in urls if not is_local(u)] == []


def test_a_converted_upload_is_valid_audio_as_long_as_its_source(page, audio) -> None:
    page.open("Voice conversion")
    samples, rate = convert(page, audio["source"], audio["reference"])
    assert rate == RATE and abs(len(samples) / rate - 2.0) < 0.01
    assert np.isfinite(samples).all() and np.abs(samples).max() > 0.01
    for what in ("source", "reference", "result"):
        assert page.image_source(f"vc-mel-{what}")


def test_two_sessions_converting_each_get_their_own_result(page, audio) -> None:
    """Two browser tabs are two Gradio sessions: both upload (sources of 2 s and 3 s) and
    press Convert, one right after the other, and each gets the conversion of its own
    source (the queue runs them in turn)."""
    first = page.driver.current_window_handle
    sessions = {}
    for name in ("source", "other"):
        if sessions:
            page.driver.switch_to.new_window("tab")
        page.open("Voice conversion")
        page.upload("vc-source", audio[name])
        page.upload("vc-reference-1", audio["reference"])
        sessions[name] = page.driver.current_window_handle
    for handle in sessions.values():
        page.driver.switch_to.window(handle)
        page.click("vc-convert")
    lengths = {}
    for name, handle in sessions.items():
        page.driver.switch_to.window(handle)
        samples, rate = fetch_audio(page.result_link())
        lengths[name] = len(samples) / rate
    page.driver.switch_to.window(sessions["other"])
    page.driver.close()
    page.driver.switch_to.window(first)
    assert lengths == pytest.approx({"source": 2.0, "other": 3.0}, abs=0.01)


def test_a_text_file_uploaded_as_audio_gets_a_message_in_the_page(page, audio) -> None:
    page.open("Voice conversion")
    # by its name: the page refuses it before sending it
    page.css("#vc-source input[type=file]")[0].send_keys(str(audio["text"]))
    assert "Invalid file type: letter.txt" in page.line_with("letter.txt")
    # named like audio: the server reads it and says what is wrong, in one line
    page.upload("vc-source", audio["disguised"])
    page.upload("vc-reference-1", audio["reference"])
    page.click("vc-convert")
    assert "the source (letter.wav): not a readable audio file" in page.line_with("letter.wav")
    assert "Traceback" not in page.text()
    # the app lives on: a good upload converts afterwards
    page.open("Voice conversion")
    samples, rate = convert(page, audio["source"], audio["reference"])
    assert abs(len(samples) / rate - 2.0) < 0.01


def test_moving_a_latent_slider_changes_the_decoded_digit(page) -> None:
    page.open("Latent space (VAE)")
    before = page.until(lambda _: page.image_source("latent-decoded"), "the decoded digit")
    slider = page.css("#latent-z1 input[type=range]")[0]
    slider.click()
    for _ in range(10):
        slider.send_keys(Keys.ARROW_RIGHT)
    after = page.until(
        lambda _: (src := page.image_source("latent-decoded")) != before and src,
        "a new decoded digit",
    )
    assert after != before
    assert float(page.css("#latent-z1 input[type=number]")[0].get_attribute("value")) != 0.0


def test_clicking_a_code_of_the_codebook_puts_it_into_the_chosen_position(page) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    from seqae.demo.codes import BOOK_SCALE

    page.open("VQ-VAE codes")
    before = page.until(lambda _: page.image_source("codes-decoded"), "the decoded digit")
    book = page.until(lambda _: page.css("#codebook img"), "the codebook")[0]
    natural = page.driver.execute_script(
        "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", book
    )
    shown = book.rect
    scale = min(shown["width"] / natural[0], shown["height"] / natural[1], 1)
    left = (shown["width"] - natural[0] * scale) / 2
    top = (shown["height"] - natural[1] * scale) / 2
    x, y = 3 * 9 * BOOK_SCALE + 4 * BOOK_SCALE, 4 * BOOK_SCALE  # the middle of code 3's tile
    ActionChains(page.driver).move_to_element_with_offset(
        book,
        round(left + x * scale - shown["width"] / 2),
        round(top + y * scale - shown["height"] / 2),
    ).click().perform()
    code = page.css("#code-1 input[type=number]")[0]
    page.until(lambda _: code.get_attribute("value") == "3", "code 3 in position 1")
    page.until(lambda _: page.image_source("codes-decoded") != before, "a new decoded digit")
