"""``kifaru report`` and ``kifaru export camtrap-dp`` on what real runs left, through ``main(argv)``."""

from __future__ import annotations

import csv
import json
import re
from datetime import datetime, timedelta

import pytest

from kifaru.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from kifaru.export.camtrap_dp import validate_package
from tests.images.photos import drawn_photo, save_taken, write_image_checkpoint
from tests.media import make_clip
from tests.models.tiny_model import write_tiny_checkpoint


def page_cards(path):
    data = json.loads(re.search(r'id="kifaru-data">(.*?)</script>', path.read_text(encoding="utf-8"), re.S).group(1))
    return data["cards"], data["failures"]


def rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_report_and_export_of_a_detect_run_as_a_new_user_with_only_their_required_arguments(new_user, tmp_path, capsys):
    from kifaru.samples import SAMPLES, make_samples

    new_user.serve_megadetector_lite()
    make_samples(new_user.work / "clips", seconds=3.0, fps=5)
    assert main(["detect", "--data-dir", "clips"]) == EXIT_OK
    capsys.readouterr()

    assert main(["report", "."]) == EXIT_OK
    assert f"wrote {'report.html'}" in capsys.readouterr().out
    cards, failures = page_cards(new_user.work / "report.html")
    assert sorted(c["file"] for c in cards) == sorted(s.name for s in SAMPLES) and failures == []
    labels = {c["file"]: c["label"] for c in cards}
    assert labels == {s.name: "blank" if s.cat_from is None else "animal" for s in SAMPLES}
    assert all(c["thumb"] for c in cards)

    assert main(["export", "camtrap-dp", "."]) == EXIT_OK
    err = capsys.readouterr().err
    assert "without latitude and longitude" in err and f"Camtrap DP 1.0.2 package: camtrap-dp (1 deployments, {len(SAMPLES)} media" in err
    observations = rows(new_user.work / "camtrap-dp" / "observations.csv")
    animals = {o["mediaID"] for o in observations if o["observationType"] == "animal"}
    assert len(animals) == sum(1 for s in SAMPLES if s.cat_from is not None)
    assert {o["observationType"] for o in observations} == {"animal", "blank"}


def test_predict_with_report_writes_the_page_beside_its_predictions(tmp_path, capsys):
    data = tmp_path / "clips"
    make_clip(data / "a.mp4", n_frames=20)
    (data / "broken.mp4").write_bytes(b"not a video at all")
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    out = tmp_path / "out"
    argv = ["predict", "--num-workers", "0", "--data-dir", str(data), "--checkpoint", str(checkpoint), "--save-dir", str(out), "--report"]
    assert main(argv) == EXIT_FAILED  # broken.mp4 has no prediction
    assert f"wrote {out / 'report.html'}" in capsys.readouterr().out
    cards, failures = page_cards(out / "report.html")
    assert [c["file"] for c in cards] == ["a.mp4"] and cards[0]["classes"]
    assert [(f["file"], f["stage"]) for f in failures] == [("broken.mp4", "decode")]


def test_photos_in_bursts_exported_with_deployments_are_valid_camtrap_dp(tmp_path, capsys, monkeypatch):
    pytest.importorskip("frictionless")
    start = datetime(2024, 5, 1, 6, 30)
    for index, seconds in enumerate([0, 1, 2, 400]):
        save_taken(tmp_path / "card" / "cam1" / f"IMG_{index:04d}.JPG", drawn_photo(index), start + timedelta(seconds=seconds))
    checkpoint = write_image_checkpoint(tmp_path / "image.ckpt")
    monkeypatch.chdir(tmp_path)
    assert main(["image", "predict", "--data-dir", "card", "--checkpoint", str(checkpoint), "--no-crop-images", "--sequences", "--save-dir", "out", "--report"]) == EXIT_OK
    cards, _ = page_cards(tmp_path / "out" / "report.html")  # image predict's --report
    assert sorted(c["file"].rsplit("/", 1)[-1] for c in cards) == [f"IMG_{i:04d}.JPG" for i in range(4)]
    assert all(c["thumb"] and c["classes"] for c in cards)
    (tmp_path / "deployments.csv").write_text(
        "deploymentID,latitude,longitude,deploymentStart,deploymentEnd\ncam1,-1.5,29.6,2024-04-30T00:00:00+02:00,2024-05-30T00:00:00+02:00\n"
    )
    capsys.readouterr()
    argv = ["export", "camtrap-dp", "out", "--deployments", "deployments.csv", "--utc-offset", "+02:00", "--project-title", "Card 1", "--validate"]
    assert main(argv) == EXIT_OK, capsys.readouterr().err
    assert "valid against the Camtrap DP 1.0.2 table schemas" in capsys.readouterr().err
    package = tmp_path / "out" / "camtrap-dp"
    assert validate_package(package) == []
    media = rows(package / "media.csv")
    assert [m["timestamp"] for m in media] == ["2024-05-01T06:30:00+02:00", "2024-05-01T06:30:01+02:00", "2024-05-01T06:30:02+02:00", "2024-05-01T06:36:40+02:00"]
    events = [o for o in rows(package / "observations.csv") if o["observationLevel"] == "event"]
    assert [(e["eventStart"], e["eventEnd"]) for e in events] == [
        ("2024-05-01T06:30:00+02:00", "2024-05-01T06:30:02+02:00"), ("2024-05-01T06:36:40+02:00", "2024-05-01T06:36:40+02:00"),
    ]  # fmt: skip
    # A second export into the same folder would lose what was filled in there: refused.
    assert main(argv) == EXIT_USAGE
    assert "--overwrite" in capsys.readouterr().err


def test_a_folder_without_results_is_a_usage_error_that_says_what_to_give(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == EXIT_USAGE
    assert "holds no kifaru_results.jsonl: give the output folder of a finished kifaru predict" in capsys.readouterr().err
    assert main(["export", "camtrap-dp", str(tmp_path)]) == EXIT_USAGE
    assert main(["export", "camtrap-dp", str(tmp_path), "--utc-offset", "2 hours"]) == EXIT_USAGE


def test_detect_labels_segments_from_their_crops_and_writes_annotated_clips(megadetector_lite, tmp_path, capsys, monkeypatch):
    """The detector, then an image classifier on each visit's own crops (MegaDetector users'
    two steps, for clips): segments.csv takes the image model's classes."""
    from kifaru.samples import SAMPLES, make_samples
    from tests.images.photos import SPECIES as IMAGE_SPECIES

    import av

    make_samples(tmp_path / "clips", seconds=3.0, fps=5)
    checkpoint = write_image_checkpoint(tmp_path / "image.ckpt")
    monkeypatch.chdir(tmp_path)
    argv = ["detect", "--data-dir", "clips", "--segment-classifier", str(checkpoint), "--save-annotated-videos", "annotated", "-q"]
    assert main(argv) == EXIT_OK
    out = capsys.readouterr()
    assert f"segments labelled by image.ckpt ({len(IMAGE_SPECIES)} classes)" in out.err
    segments = rows(tmp_path / "segments.csv")
    videos = [s for s in SAMPLES if s.codec != "jpeg"]
    assert {r["filepath"].rsplit("/", 1)[-1] for r in segments} == {s.name for s in videos if s.cat_from is not None}
    # A random-weight network: which class it says is not the point; that it is the crops' is.
    assert all(r["species_from"] == "crops" and r["species"] in IMAGE_SPECIES[1:] for r in segments), segments
    assert f"wrote {len(videos)} annotated clips into annotated" in out.out
    for sample in videos:
        with av.open(str(tmp_path / "annotated" / sample.name.rsplit(".", 1)[0]) + ".mp4") as copy, av.open(str(tmp_path / "clips" / sample.name)) as original:
            assert sum(1 for _ in copy.decode(video=0)) == sum(1 for _ in original.decode(video=0))
