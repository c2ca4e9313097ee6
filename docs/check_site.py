"""A reader's check of the built site: headless Chromium opens pages and this test asserts what a reader sees.

Run by ``make docs-check`` (after ``make docs``) on the folder in ``TORCHSCI_DOCS_HTML``. For the index, one
tutorial and one API page, Chromium loads the page (theme JavaScript included) inside a small harness page
whose script, once the page has loaded, reports what the browser rendered: the title, every image with
whether the browser decoded it (``complete`` and a natural width), and the broken-reference markers (a
cross-reference rendered as code that links nowhere, except the ones the site marks as deliberately
unlinked, and docutils' "problematic" and "system-message" nodes). Asserted: the title; every local image
loaded; the images a page must show are there (the tutorial's plots); no broken references; and a
screenshot of the page, kept in ``<site>/../screenshots/``, is not blank. Images on other hosts (the Colab
badge) are not checked: this check runs offline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

SITE = Path(os.environ.get("TORCHSCI_DOCS_HTML", Path(__file__).parent / "_build" / "full" / "html")).resolve()
SHOTS = SITE.parent / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1280,1600", "--virtual-time-budget=15000",
         "--allow-file-access-from-files"]  # lets the harness read the page it loads (both are files)

# page, words its title must contain, fewest local images the rendered page must show
PAGES = [
    ("index.html", "torchsci", 0),
    ("tutorials/physics.html", "Particle physics", 3),
    ("api/generated/torchsci.trainer.html", "torchsci.trainer", 0),
]

HARNESS = """<html><body><pre id="report">not loaded</pre>
<iframe id="page" src="{url}" width="1280" height="1600"></iframe>
<script>
const frame = document.getElementById("page");
frame.addEventListener("load", () => {{
  const doc = frame.contentDocument;
  const images = Array.from(doc.images).map(i => ({{src: i.getAttribute("src") || "", loaded: i.complete && i.naturalWidth > 0}}));
  const broken = Array.from(doc.querySelectorAll("code.xref:not(.xref-unchecked), .problematic, .system-message"))
    .filter(e => !e.matches("code.xref") || e.closest("a") === null)
    .map(e => e.outerHTML.slice(0, 200));
  document.getElementById("report").textContent = JSON.stringify({{title: doc.title, images, broken}});
}});
</script></body></html>
"""


def _chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=300)


def _rendered(path: Path) -> dict:
    """What the browser rendered of ``path``, as reported by the harness page."""
    with tempfile.TemporaryDirectory(prefix="harness-") as folder:
        harness = Path(folder) / "harness.html"
        harness.write_text(HARNESS.format(url=path.as_uri()))
        done = _chromium("--dump-dom", harness.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="report">(.*?)</pre>', done.stdout, re.S)
    assert found and found.group(1) != "not loaded", f"{path}: the page did not load in Chromium"
    return json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"'))


@pytest.mark.parametrize(("page", "title", "min_images"), PAGES)
def test_page_renders_in_a_browser(page, title, min_images):
    assert CHROMIUM, "no Chromium on PATH: apt-get install chromium (what .ci/run does)"
    path = SITE / page
    assert path.is_file(), f"{path}: not built; run `make docs` first"
    report = _rendered(path)
    assert title in report["title"], f"{page}: title {report['title']!r}"
    assert not report["broken"], f"{page}: broken references: {report['broken'][:10]}"
    local = [image for image in report["images"] if not re.match(r"https?://", image["src"])]
    assert len(local) >= min_images, f"{page}: {len(local)} images, expected at least {min_images}"
    assert all(image["loaded"] for image in local), f"{page}: images that did not load: {[i for i in local if not i['loaded']]}"

    import matplotlib.image  # lazy: decodes the PNG screenshot

    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / (page.replace("/", "_").removesuffix(".html") + ".png")
    shot.unlink(missing_ok=True)
    taken = _chromium(f"--screenshot={shot}", path.as_uri())
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    assert matplotlib.image.imread(shot).std() > 0.02, f"{page}: the screenshot is blank ({shot})"
