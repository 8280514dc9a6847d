"""The report as a browser shows it: opened from disk in headless Chromium (Debian's ``chromium``),
with no server. The page's DOM after its script ran says what a person would see: one card per
file, pictures loaded, the filter applied."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from kifaru.report import write_report
from tests.helpers.results import make_results

CHROMIUM = next((path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (Debian: apt-get install chromium); the report is rendered in it")


class Page(HTMLParser):
    """The elements of a dumped DOM that the tests look at."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.body: dict[str, str] = {}
        self.cards: list[dict[str, str]] = []
        self.images: list[dict[str, str]] = []
        self.failure_rows = 0
        self._in_failures = False
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = attributes
        elif tag == "article" and "card" in attributes.get("class", "").split():
            self.cards.append(attributes)
        elif tag == "img":
            self.images.append(attributes)
        elif tag == "table" and attributes.get("id") == "failures":
            self._in_failures = True
        elif tag == "tr" and self._in_failures:
            self.failure_rows += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_failures = False


def render(url: str, tmp_path, height: int = 3000) -> Page:
    """The DOM after the page's script ran and its pictures loaded (a window tall enough that no
    card is below the fold, where lazy pictures would wait to be scrolled to)."""
    done = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}",
            f"--window-size=1280,{height}", "--virtual-time-budget=10000", "--dump-dom", url,
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return Page(done.stdout)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    results = make_results(tmp_path_factory.mktemp("results"))
    return write_report(results.folder)


def test_the_gallery_has_one_card_per_file_and_every_picture_loads(report, tmp_path):
    page = render(report.path.as_uri(), tmp_path)
    assert page.body.get("data-ready") == "1"  # the script ran to its end
    assert sorted(card["data-file"] for card in page.cards) == ["cam1/deer.mp4", "cam1/empty.mp4", "cam2/p1.jpg", "cam2/p2.jpg", "cam2/p3.jpg"]
    assert page.body["data-shown"] == "5"
    assert len(page.images) == 5
    assert [image.get("data-loaded") for image in page.images] == ["1"] * 5, page.images
    assert not any(image.get("data-failed") for image in page.images)
    assert page.failure_rows == 1 + 2  # the header and the two files that could not be read


def test_the_filter_in_the_address_shows_only_that_class(report, tmp_path):
    page = render(report.path.as_uri() + "#species=wild_boar", tmp_path)
    assert [card["data-label"] for card in page.cards] == ["wild_boar", "wild_boar"]
    assert page.body["data-shown"] == "2"
    flagged = render(report.path.as_uri() + "#review=1&sort=low", tmp_path)
    assert [card["data-file"] for card in flagged.cards] == ["cam2/p2.jpg"]  # wild_boar at 0.48
    assert "review" in flagged.cards[0]["class"].split() and flagged.body["data-shown"] == "1"
