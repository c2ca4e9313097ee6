"""A reader's check of the built site: headless Chromium opens pages and this test asserts what a reader sees.

Run by ``make docs-check`` (after ``make docs``) on the folder in ``TORCHSCI_DOCS_HTML``. For the index, one
tutorial and one API page, Chromium renders the page (theme JavaScript included), dumps the DOM after the
scripts ran and takes a screenshot, kept in ``<site>/../screenshots/``. Asserted: the page's title; no
resource failed to load (Chromium's console log names every file it could not read: images, CSS,
scripts); every local image in the rendered DOM is a file that decodes as an image; images are present
where a page must show them (the tutorial's plots); no broken-reference markers (an unresolved
cross-reference renders as code that links nowhere; docutils' "problematic" and "system-message" nodes);
and the screenshot is not blank. Images on other hosts (the Colab badge) are skipped: this check is offline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

SITE = Path(os.environ.get("TORCHSCI_DOCS_HTML", Path(__file__).parent / "_build" / "full" / "html")).resolve()
SHOTS = SITE.parent / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1280,1600", "--virtual-time-budget=8000",
         "--enable-logging=stderr", "--v=0"]

# page, words its title must contain, fewest images the rendered page must show
PAGES = [
    ("index.html", "torchsci", 0),
    ("tutorials/physics.html", "Particle physics", 3),
    ("api/generated/torchsci.trainer.html", "torchsci.trainer", 0),
]


class _Page(HTMLParser):
    """Title, image sources and broken-reference markers of a rendered DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.title, self.images, self.broken = "", [], []
        self._in_title, self._links, self._code_in_link = False, 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "title":
            self._in_title = True
        elif tag == "a":
            self._links += 1
        elif tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])
        # an unresolved reference is code that links nowhere; torchsci_docs marks the deliberate ones
        if "xref" in classes and tag == "code" and self._links == 0 and "xref-unchecked" not in classes:
            self.broken.append(f"unlinked cross-reference <code class='{attrs.get('class')}'>")
        if {"problematic", "system-message"} & set(classes):
            self.broken.append(f"<{tag} class='{attrs.get('class')}'>")

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        elif tag == "a":
            self._links = max(0, self._links - 1)

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def _chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=180)


def _png_pixels(path: Path) -> np.ndarray:
    import matplotlib.image  # noqa: PLC0415 (decodes PNG without another dependency)

    return matplotlib.image.imread(path)


@pytest.mark.parametrize(("page", "title", "min_images"), PAGES)
def test_page_renders_in_a_browser(page, title, min_images):
    assert CHROMIUM, "no Chromium on PATH: apt-get install chromium (what .ci/run does)"
    path = SITE / page
    assert path.is_file(), f"{path}: not built; run `make docs` first"
    url = path.as_uri()
    dumped = _chromium("--dump-dom", url)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    failed = [line for line in dumped.stderr.splitlines() if re.search(r"ERR_FILE_NOT_FOUND|Failed to load resource", line)]
    assert not failed, f"{page}: resources that did not load:\n" + "\n".join(failed)

    dom = _Page()
    dom.feed(dumped.stdout)
    assert title in dom.title, f"{page}: title {dom.title!r}"
    assert not dom.broken, f"{page}: broken references: {dom.broken[:10]}"
    local = [src for src in dom.images if urlparse(src).scheme in ("", "file")]
    assert len(local) >= min_images, f"{page}: {len(local)} images, expected at least {min_images}"
    for src in local:
        parsed = urlparse(src)
        file = Path(unquote(parsed.path)) if parsed.scheme == "file" else (path.parent / unquote(parsed.path))
        assert file.is_file(), f"{page}: image {src} is missing"
        if file.suffix.lower() == ".png":
            assert _png_pixels(file).size > 0, f"{page}: image {src} does not decode"
        else:
            assert file.stat().st_size > 0, f"{page}: image {src} is empty"

    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / (page.replace("/", "_").removesuffix(".html") + ".png")
    shot.unlink(missing_ok=True)
    taken = _chromium(f"--screenshot={shot}", url)
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    pixels = _png_pixels(shot)
    assert pixels.std() > 0.02, f"{page}: the screenshot is blank ({shot})"
