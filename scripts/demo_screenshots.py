"""Screenshots of every tab of ``seqae demo`` for the README (``docs/demo/<kind>.png``).

Starts the app on a free port for the models under ``--runs`` and drives it in headless
Chromium, as the browser tests do (:mod:`seqae.demo.browser`), then saves one full-page PNG per
tab (256 colours: a page is mostly flat colour):

    .venv/bin/python scripts/demo_screenshots.py --runs runs --out docs/demo

Before each screenshot the tab is used the way its screenshot should show it: a corpus
utterance is converted to another corpus voice (the first training voice's first utterance to
the last voice); the VAE's sliders are set to a test digit's code and the VQ-VAE's to a test
digit's codes; the text and tree tabs show their first example as the page opens.

A runs folder may gather runs from several places through links, e.g. the README's
screenshots came from a folder linking ``/tmp/demo_runs/{vae_digits,vqvae,vc}`` and
``runs/{summary_ae,summary_ae_nodisc,tree_ae_pcfg}``. Nothing is written outside ``--out``. Bad
input (no runs folder, no browser) is one line and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from seqae.demo.app import TABS, build_app, launch_app  # noqa: E402
from seqae.demo.browser import (  # noqa: E402
    BrowserMissingError,
    DemoPage,
    headless_chromium,
    screenshot,
)
from seqae.demo.discovery import FoundModel, find_models  # noqa: E402

#: Seconds to let images and players settle before a screenshot.
SETTLE = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _convert_a_corpus_voice(page: DemoPage, models: list[FoundModel]) -> None:
    from seqae.audio.dataset import SpeechCorpus

    root = models[0].run_path("data.corpus")
    if root is None:
        return
    corpus = SpeechCorpus(root)
    source = corpus.select(speakers=[corpus.speakers_with_role("train")[0]])[0].path
    page.upload("vc-source", source)
    page.css("#vc-voice label")[-1].click()  # the last voice of the list
    page.until(lambda _: page.css("#vc-sample [data-testid^=waveform]"), "the voice's sample")
    page.click("vc-convert")
    page.result_link()
    page.until(lambda _: page.image_source("vc-mel-result"), "the mel spectrograms")


def _set_digit(prefix: str, index: int) -> Callable[[DemoPage, list[FoundModel]], None]:
    def use(page: DemoPage, models: list[FoundModel]) -> None:
        number = page.css(f"#{prefix}-digit input")[0]
        number.clear()
        number.send_keys(str(index))
        page.click(f"{prefix}-set")

    return use


#: What is done in each tab before its screenshot, by kind.
USES: dict[str, Callable[[DemoPage, list[FoundModel]], None]] = {
    "vc": _convert_a_corpus_voice,
    "vae": _set_digit("latent", 3),
    "vqvae": _set_digit("codes", 3),
}


def _palette_png(path: Path) -> None:
    """Rewrite a screenshot with a 256-colour palette (a fifth of the size, no visible loss)."""
    from PIL import Image

    with Image.open(path) as image:
        quantized = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    quantized.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", required=True, help="the runs folder the app shows")
    parser.add_argument("--out", default="docs/demo", help="folder of the PNGs (docs/demo)")
    parser.add_argument("--width", type=int, default=1280, help="window width in pixels")
    args = parser.parse_args(argv)
    runs = Path(args.runs)
    if not runs.is_dir():
        parser.error(f"--runs {runs}: no such folder")
    try:
        driver = headless_chromium(width=args.width, height=900)
    except BrowserMissingError as exc:
        parser.error(str(exc))
    found = find_models(runs)
    app = build_app(runs, found=found)
    page = DemoPage(driver, launch_app(app, port=_free_port()), wait=120)
    try:
        for spec in TABS:
            page.open(spec.title)
            time.sleep(SETTLE)
            use = USES.get(spec.kind)
            if use is not None and found[spec.kind]:
                use(page, found[spec.kind])
                time.sleep(SETTLE)
            path = screenshot(driver, Path(args.out) / f"{spec.kind}.png")
            _palette_png(path)
            print(f"{spec.title}: {path} ({path.stat().st_size // 1024} KiB)")
    finally:
        driver.quit()
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
