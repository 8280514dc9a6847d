"""kifaru report: the page's data and its thumbnails, made from a run's records."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from kifaru.exceptions import ConfigError
from kifaru.report import REPORT_HTML, THUMBNAILS, write_report
from kifaru.report.thumbnails import BOX_COLOURS, BOX_WIDTH
from tests.helpers.results import DEER_BOX, make_results


def page_data(path):
    text = path.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script type="application/json" id="kifaru-data">(.*?)</script>', text, re.S).group(1))


@pytest.fixture
def results(tmp_path):
    return make_results(tmp_path)


def test_every_file_read_is_a_card_and_every_failure_is_listed_with_its_reason(results):
    report = write_report(results.folder)
    assert report.path == results.folder / REPORT_HTML
    data = page_data(report.path)
    cards = {c["file"]: c for c in data["cards"]}
    assert sorted(cards) == ["cam1/deer.mp4", "cam1/empty.mp4", "cam2/p1.jpg", "cam2/p2.jpg", "cam2/p3.jpg"]
    assert {(f["file"], f["stage"], f["reason"]) for f in data["failures"]} == {
        ("cam1/broken.mp4", "decode", "cannot be opened as a video"),
        ("cam1/gone.mp4", "file", "file not found"),
    }
    deer = cards["cam1/deer.mp4"]
    assert deer["label"] == "european_roe_deer" and deer["classes"][0] == ["european_roe_deer", 0.9]
    assert deer["seen"] == [[1.0, 2.5, None]] and deer["detector"] == 0.9 and deer["review"] == []
    assert cards["cam1/empty.mp4"]["label"] == "blank"
    assert cards["cam2/p2.jpg"]["review"] == ["low confidence: wild_boar at 0.48, under 0.5"]
    assert cards["cam2/p1.jpg"]["label"] == "wild_boar" and cards["cam2/p1.jpg"]["taken"] == "2024-05-02T10:00:00"
    assert cards["cam2/p3.jpg"]["label"] == "blank" and cards["cam2/p3.jpg"]["classes"] == []  # the detector saw nothing
    assert all((results.folder / THUMBNAILS / c["thumb"]).is_file() for c in data["cards"])
    assert (report.cards, report.failures, report.without_picture) == (5, 2, 0)
    assert [r["text"].split(",")[0] for r in data["runs"]] == ["kifaru 0.1.0 predict", "kifaru 0.1.0 image predict"]


def test_a_clip_s_thumbnail_is_its_best_frame_with_the_detector_s_box_drawn(results):
    data = page_data(write_report(results.folder).path)
    deer = next(c for c in data["cards"] if c["file"] == "cam1/deer.mp4")
    thumb = np.asarray(Image.open(results.folder / THUMBNAILS / deer["thumb"]).convert("RGB")).astype(int)
    height, width = thumb.shape[:2]
    x1, y1, x2, y2 = (round(v * (n - 1)) for v, n in zip(DEER_BOX, (width, height, width, height)))
    yellow = np.array(BOX_COLOURS["animal"])

    def near(colour, y, x):
        # JPEG moves a colour by a few tens at an edge; yellow is over 200 from ground and animal in blue.
        return np.abs(thumb[y, x] - colour).max() < 60

    middle_y, middle_x = (y1 + y2) // 2, (x1 + x2) // 2
    inset = BOX_WIDTH // 2  # the outline's middle: it is drawn inwards from the box's edge
    assert near(yellow, middle_y, x1 + inset) and near(yellow, middle_y, x2 - inset)
    assert near(yellow, y1 + inset, middle_x) and near(yellow, y2 - inset, middle_x)
    # Inside the box: the animal's brown, so the best frame (one with the animal) was drawn.
    assert near(np.array([140, 90, 40]), middle_y, middle_x)
    assert not near(yellow, middle_y, max(0, x1 - 8))  # and the outline is only at the box's edge


def test_a_file_moved_since_the_run_gets_a_card_that_says_why_it_has_no_picture(results):
    results.path("cam1/empty.mp4").unlink()
    report = write_report(results.folder)
    card = next(c for c in page_data(report.path)["cards"] if c["file"] == "cam1/empty.mp4")
    assert card["thumb"] is None and "file not found" in card["nopic"]
    assert report.without_picture == 1


def test_a_second_report_reuses_the_thumbnails_of_the_first(results):
    write_report(results.folder)
    thumbs = results.folder / THUMBNAILS
    first = {p.name: p.stat().st_mtime_ns for p in thumbs.iterdir()}
    write_report(results.folder)
    assert {p.name: p.stat().st_mtime_ns for p in thumbs.iterdir()} == first


def test_text_from_the_files_cannot_break_out_of_the_page_s_data(tmp_path):
    from kifaru.report.page import render_page

    page = render_page("t", [], [{"file": "</script><script>alert(1)</script>"}], [], "thumbs")
    assert page.count("</script>") == 2  # the ends of the page's two scripts: none from the data
    assert page_data_from(page)["cards"][0]["file"] == "</script><script>alert(1)</script>"


def page_data_from(text):
    return json.loads(re.search(r'id="kifaru-data">(.*?)</script>', text, re.S).group(1))


def test_a_folder_without_results_is_refused_saying_what_to_give(tmp_path):
    with pytest.raises(ConfigError, match="holds no kifaru_results.jsonl: give the output folder of a finished kifaru predict"):
        write_report(tmp_path)
