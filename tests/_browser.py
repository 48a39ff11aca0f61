"""A real headless browser for tests of generated pages: Debian's Chromium driven by
Selenium through chromedriver. Tests skip, saying why, where either is missing."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def page_images(path: Path, *, timeout_s: float = 60.0) -> dict:
    """Open ``path`` (file://) in headless Chromium; return the page's title, its visible
    text and, per image, (alt, loaded, natural width, natural height, rendered width)."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("no headless Chromium here (Debian packages chromium and chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    with tempfile.TemporaryDirectory() as profile:
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1400,1000",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            driver.set_page_load_timeout(timeout_s)
            driver.get(Path(path).resolve().as_uri())
            return driver.execute_script(
                "return {title: document.title, text: document.body.innerText, images: Array.from(document.images)"
                ".map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width])}"
            )
        finally:
            driver.quit()
