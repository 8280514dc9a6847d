"""Bursts: photos grouped into sequences by the seq_ids given, else by camera folder and EXIF time
gaps (untimed photos on their own, by name, and listed); a sequence's scores combined from its
photos' by mean, weighted mean or max, with blank/empty by the geometric mean."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from PIL import Image

from kifaru.images.photo import read_photo
from kifaru.images.sequences import PhotoInBurst, aggregate, group_sequences, photo_scores, taken_at
from tests.images.photos import drawn_photo, save_taken

T0 = datetime(2024, 5, 1, 6, 30, 0)
CLASSES = ["blank", "cat", "zebra"]


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_time_a_photo_was_taken_comes_from_its_exif(tmp_path):
    timed = save_taken(tmp_path / "timed.jpg", drawn_photo(0), _at(5))
    untimed = save_taken(tmp_path / "untimed.jpg", drawn_photo(1), None)
    png = save_taken(tmp_path / "timed.png", drawn_photo(2), _at(9))
    assert read_photo(timed).taken == _at(5)
    assert read_photo(png).taken == _at(9)
    assert read_photo(untimed).taken is None


@pytest.mark.parametrize("value", ["0000:00:00 00:00:00", "    :  :     :  :  ", "yesterday", b"2024:05:01 06:30:00"])
def test_a_clock_never_set_or_a_value_that_is_not_a_time_is_no_time(value):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = value
    assert taken_at(exif) is None


def test_a_time_padded_as_cameras_pad_it_is_read():
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2024:05:01 06:30:07\x00"
    assert taken_at(exif) == _at(7)


def test_a_burst_is_the_photos_of_a_camera_within_the_gap_of_each_other():
    photos = [  # given out of time order: grouping goes by time, not by name
        PhotoInBurst("site/cam1/IMG_0003.JPG", _at(2)),
        PhotoInBurst("site/cam1/IMG_0001.JPG", _at(0)),
        PhotoInBurst("site/cam1/IMG_0002.JPG", _at(1)),
        PhotoInBurst("site/cam1/IMG_0004.JPG", _at(300)),  # the next trigger
        PhotoInBurst("site/cam1/IMG_0005.JPG", _at(360)),  # exactly the gap after: the same burst
        PhotoInBurst("site/cam1/IMG_0006.JPG", _at(420.5)),  # just over the gap: a new one
    ]
    grouping = group_sequences(photos, gap_seconds=60)
    assert grouping.seq_ids == {
        "site/cam1/IMG_0003.JPG": "0001",
        "site/cam1/IMG_0001.JPG": "0001",
        "site/cam1/IMG_0002.JPG": "0001",
        "site/cam1/IMG_0004.JPG": "0002",
        "site/cam1/IMG_0005.JPG": "0002",
        "site/cam1/IMG_0006.JPG": "0003",
    }
    assert grouping.untimed == []
    assert list(grouping.sequences()) == ["0001", "0002", "0003"]
    assert grouping.sequences()["0001"] == ["site/cam1/IMG_0003.JPG", "site/cam1/IMG_0001.JPG", "site/cam1/IMG_0002.JPG"]
    assert "60 s" in grouping.rule


def test_the_gap_is_configurable():
    photos = [PhotoInBurst(f"cam/{i}.jpg", _at(seconds)) for i, seconds in enumerate([0, 20, 50, 75])]
    assert len(group_sequences(photos, gap_seconds=60).sequences()) == 1
    assert group_sequences(photos, gap_seconds=25).seq_ids == {"cam/0.jpg": "0001", "cam/1.jpg": "0001", "cam/2.jpg": "0002", "cam/3.jpg": "0002"}


def test_two_cameras_triggered_at_the_same_time_are_two_sequences():
    photos = [
        PhotoInBurst("/card/north/a.jpg", _at(0)),
        PhotoInBurst("/card/south/a.jpg", _at(1)),
        PhotoInBurst("/card/north/b.jpg", _at(2)),
        PhotoInBurst("/card/south/b.jpg", _at(3)),
        PhotoInBurst("/card/south/c.jpg", _at(4000)),
    ]
    grouping = group_sequences(photos)
    assert grouping.sequences() == {
        "north/0001": ["/card/north/a.jpg", "/card/north/b.jpg"],
        "south/0001": ["/card/south/a.jpg", "/card/south/b.jpg"],
        "south/0002": ["/card/south/c.jpg"],
    }


def test_a_photo_without_a_time_is_its_own_sequence_in_name_order_and_is_listed():
    photos = [
        PhotoInBurst("cam/z_untimed.jpg"),
        PhotoInBurst("cam/b.jpg", _at(10)),
        PhotoInBurst("cam/a_untimed.jpg"),
        PhotoInBurst("cam/c.jpg", _at(12)),
    ]
    grouping = group_sequences(photos)
    assert grouping.seq_ids == {"cam/b.jpg": "0001", "cam/c.jpg": "0001", "cam/a_untimed.jpg": "0002", "cam/z_untimed.jpg": "0003"}
    assert grouping.untimed == ["cam/a_untimed.jpg", "cam/z_untimed.jpg"]


def test_given_seq_ids_are_used_as_they_are_whatever_the_times():
    photos = [
        PhotoInBurst("cam1/a.jpg", _at(0), "SER_S11#B03#1#1"),
        PhotoInBurst("cam2/b.jpg", None, "SER_S11#B03#1#1"),  # another folder, no time: still the same
        PhotoInBurst("cam1/c.jpg", _at(1), "SER_S11#B03#1#2"),
    ]
    grouping = group_sequences(photos)
    assert grouping.sequences() == {"SER_S11#B03#1#1": ["cam1/a.jpg", "cam2/b.jpg"], "SER_S11#B03#1#2": ["cam1/c.jpg"]}
    assert grouping.untimed == [] and "given" in grouping.rule


def test_a_photo_is_empty_only_where_every_crop_says_so():
    crops = [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]
    assert photo_scores(crops, CLASSES) == pytest.approx([0.1, 0.2, 0.8])
    with pytest.raises(ValueError):
        photo_scores([], CLASSES)


def test_a_sequence_s_scores_by_each_aggregation():
    scores = [[0.5, 0.4, 0.1], [0.2, 0.2, 0.6], [0.8, 0.1, 0.1]]
    blank = (0.5 * 0.2 * 0.8) ** (1 / 3)  # the geometric mean, whatever the aggregation
    assert aggregate(scores, CLASSES, "mean") == pytest.approx([blank, 0.7 / 3, 0.8 / 3])
    assert aggregate(scores, CLASSES, "max") == pytest.approx([blank, 0.4, 0.6])
    weights = [0.9, 0.5, 0.1]
    assert aggregate(scores, CLASSES, "weighted_mean", weights) == pytest.approx(
        [blank, (0.9 * 0.4 + 0.5 * 0.2 + 0.1 * 0.1) / 1.5, (0.9 * 0.1 + 0.5 * 0.6 + 0.1 * 0.1) / 1.5]
    )


def test_one_photo_that_sees_an_animal_pulls_empty_down_to_zero():
    assert aggregate([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], CLASSES, "mean")[0] == 0.0


def test_the_empty_class_is_recognised_by_its_name_and_not_its_place():
    scores = [[0.3, 0.7], [0.6, 0.4]]
    assert aggregate(scores, ["zebra", "Empty"], "mean") == pytest.approx([0.45, np.sqrt(0.7 * 0.4)])
    assert aggregate(scores, ["zebra", "cat"], "mean") == pytest.approx([0.45, 0.55])


def test_bad_aggregation_arguments_are_refused():
    with pytest.raises(ValueError, match="aggregations: mean, weighted_mean, max"):
        aggregate([[0.5, 0.5, 0.0]], CLASSES, "median")
    with pytest.raises(ValueError, match="one non-negative weight per photo"):
        aggregate([[0.5, 0.5, 0.0]], CLASSES, "weighted_mean", [0.5, 0.5])
    with pytest.raises(ValueError):
        aggregate([], CLASSES)
