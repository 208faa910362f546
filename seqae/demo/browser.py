"""A headless Chromium driven through selenium, for the demo's browser tests and screenshots.

Debian's ``chromium`` and ``chromium-driver`` (``scripts/setup.sh`` installs them) and the
``selenium`` package of the ``demo`` extra; nothing is downloaded (selenium's driver manager is
kept offline, and the browser resolves no host but this machine's, so a page that tried to
reach the internet would fail rather than leak).

    driver = headless_chromium()
    page = DemoPage(driver, url)
    page.open("Voice conversion")
    page.upload("vc-source", "me.wav")
    page.click("vc-convert")
    href = page.result_link()
    screenshot(driver, "docs/demo/vc.png")
    driver.quit()

:class:`DemoPage` knows the page's parts by the ``elem_id`` the tabs give them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

__all__ = [
    "BrowserMissingError",
    "DemoPage",
    "LOCAL_HOSTS",
    "find_chromium",
    "headless_chromium",
    "is_local",
    "requested_urls",
    "screenshot",
]

#: Hosts a page of the demo may load anything from.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
#: The height of the page's content: gradio lays it out in nested containers.
_PAGE_HEIGHT = (
    "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight, "
    "...Array.from(document.querySelectorAll('gradio-app, .gradio-container, main'))"
    ".map(e => e.scrollHeight))"
)
_BROWSERS = ("chromium", "chromium-browser", "google-chrome")
_DRIVERS = ("chromedriver",)


class BrowserMissingError(RuntimeError):
    """No Chromium or no chromedriver on this machine; the message says how to install them."""


def find_chromium() -> tuple[str, str]:
    """Paths of the Chromium browser and of its driver.

    Raises:
        BrowserMissingError: either is not on the ``PATH``.
    """
    browser = next((p for p in map(shutil.which, _BROWSERS) if p), None)
    driver = next((p for p in map(shutil.which, _DRIVERS) if p), None)
    if browser is None or driver is None:
        missing = [
            name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path
        ]
        raise BrowserMissingError(
            f"{' and '.join(missing)} not found: apt-get install chromium chromium-driver "
            "(scripts/setup.sh does)"
        )
    return browser, driver


def headless_chromium(*, width: int = 1280, height: int = 1000) -> Any:
    """A headless Chromium selenium driver that logs every network request it makes.

    Args:
        width: Window width in pixels.
        height: Window height in pixels.

    Raises:
        BrowserMissingError: Chromium or its driver is not installed.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    browser, driver = find_chromium()
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium's driver manager: never download
    options = Options()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
        "--autoplay-policy=no-user-gesture-required",
        "--use-fake-ui-for-media-stream",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def requested_urls(driver: Any) -> list[str]:
    """The URLs the browser requested since the last call (from its performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def is_local(url: str) -> bool:
    """Whether a requested URL stays on this machine (``data:`` and ``blob:`` URLs do)."""
    parsed = urlparse(url)
    return parsed.scheme in ("data", "blob") or parsed.hostname in LOCAL_HOSTS


def screenshot(driver: Any, path: str | os.PathLike[str], *, max_height: int = 4000) -> Path:
    """Save a PNG of the whole page (the window is made as tall as the page, at most
    ``max_height`` pixels, then restored).

    Args:
        driver: A driver from :func:`headless_chromium`.
        path: The PNG file to write (its folder is created).
        max_height: The tallest screenshot taken.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = driver.get_window_size()
    try:
        for _ in range(3):  # a taller window can change the layout: measure again
            frame = driver.get_window_size()["height"] - driver.execute_script(
                "return window.innerHeight"
            )
            height = min(int(driver.execute_script(_PAGE_HEIGHT)) + frame, max_height)
            if abs(height - driver.get_window_size()["height"]) <= 2:
                break
            driver.set_window_size(size["width"], height)
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(size["width"], size["height"])
    return path


class DemoPage:
    """The demo's page in a browser, driven as a person would.

    Args:
        driver: A driver from :func:`headless_chromium`.
        url: The app's address.
        wait: Seconds to wait for anything before failing.
    """

    def __init__(self, driver: Any, url: str, *, wait: float = 30.0) -> None:
        self.driver = driver
        self.url = url
        self.wait = wait

    def until(self, condition: Callable[[Any], Any], what: str) -> Any:
        """Wait until ``condition(driver)`` is truthy and return it (a selenium
        ``TimeoutException`` naming ``what`` after :attr:`wait` seconds)."""
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, self.wait).until(
            condition, message=f"timed out waiting for {what}"
        )

    def css(self, selector: str) -> list[Any]:
        """The elements matching a CSS selector."""
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def open(self, tab: str) -> None:
        """Load the page (a new Gradio session) and open the tab labelled ``tab``."""
        self.driver.get(self.url)
        self.until(
            lambda _: next((b for b in self.css("button[role=tab]") if b.text == tab), None),
            f"the tab {tab!r}",
        ).click()

    def tabs(self) -> list[str]:
        """The tabs' labels."""
        return [b.text for b in self.css("button[role=tab]")]

    def text(self) -> str:
        """The page's visible text."""
        return self.css("body")[0].text

    def click(self, elem_id: str) -> None:
        """Click the element with this id (a button)."""
        self.css(f"#{elem_id}")[0].click()

    def upload(self, elem_id: str, path: str | os.PathLike[str]) -> None:
        """Upload a file into the audio component ``elem_id`` and wait until the page holds it
        (its download link, or for a file the browser cannot decode its plain player, points
        at it)."""
        name = Path(path).name
        self.css(f"#{elem_id} input[type=file]")[0].send_keys(str(Path(path).resolve()))
        self.until(
            lambda _: self.css(f'#{elem_id} a[href$="/{name}"], #{elem_id} audio[src$="/{name}"]'),
            f"the upload of {name}",
        )

    def result_link(self, elem_id: str = "vc-result") -> str:
        """The download address of an audio output, once it has one."""
        return self.until(
            lambda _: next(
                (a.get_attribute("href") for a in self.css(f"#{elem_id} a[download]")), None
            ),
            "the converted audio",
        )

    def image_source(self, elem_id: str) -> str | None:
        """The ``src`` of the image shown by the image component ``elem_id`` (None: none)."""
        images = self.css(f"#{elem_id} img")
        return images[0].get_attribute("src") if images else None

    def line_with(self, text: str) -> str:
        """The first line of the page's text that holds ``text``, once there is one."""
        return self.until(
            lambda _: next((line for line in self.text().splitlines() if text in line), None),
            f"a line with {text!r}",
        )
