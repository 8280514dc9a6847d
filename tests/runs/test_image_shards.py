"""Shards of photo runs: ``kifaru image predict --shard I/N`` keeps every burst whole in one shard
(by its camera folder, or its given seq_id), and ``kifaru merge`` numbers the bursts again over the
whole run; ``kifaru predict --photos image --shard`` shards the photos beside the videos, and the
merge combines both results files. Merged shards are the run made in one go, byte for byte."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from kifaru.cli import EXIT_FAILED, EXIT_OK, main
from kifaru.outputs.results_file import IMAGE_RESULTS_FILE, RESULTS_FILE
from tests.helpers.outputs import assert_same_outputs
from tests.images.photos import drawn_photo, save_taken, write_image_checkpoint
from tests.media import make_clip
from tests.models.tiny_model import write_tiny_checkpoint

START = datetime(2026, 6, 1, 5, 0, 0)
SEQUENCE_OUTPUTS = ["zamba_predictions.csv", "zamba_predictions_failures.csv", "zamba_predictions_sequences.csv", RESULTS_FILE]


@pytest.fixture(scope="module")
def card(tmp_path_factory) -> Path:
    """5 cameras, each with two bursts of 2 photos 5 minutes apart and a photo with no time; one broken photo."""
    folder = tmp_path_factory.mktemp("card")
    for camera in range(5):
        for burst in range(2):
            for shot in range(2):
                taken = START + timedelta(minutes=5 * burst, seconds=2 * shot + camera)
                save_taken(folder / f"cam{camera}" / f"b{burst}_{shot}.jpg", drawn_photo(10 * camera + 2 * burst + shot), taken)
        save_taken(folder / f"cam{camera}" / "untimed.jpg", drawn_photo(90 + camera), None)
    (folder / "cam3" / "broken.jpg").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_image_checkpoint(tmp_path_factory.mktemp("ckpt") / "image.ckpt")


def image_predict(card: Path, checkpoint: Path, out: Path, *extra: str) -> int:
    argv = ["image", "predict", "--data-dir", str(card), "--checkpoint", str(checkpoint), "--save-dir", str(out)]
    return main([*argv, "--no-crop-images", "--sequences", "--num-workers", "0", "-q", *extra])


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("count", [1, 2, 3])
def test_image_shards_keep_bursts_whole_and_merge_into_the_run_made_in_one_go(card, checkpoint, tmp_path, capsys, count):
    assert image_predict(card, checkpoint, tmp_path / "one") == EXIT_FAILED  # broken.jpg
    shards = [tmp_path / f"shard{i}" for i in range(1, count + 1)]
    cameras_seen: list[str] = []
    for index, shard in enumerate(shards, start=1):
        assert image_predict(card, checkpoint, shard, "--shard", f"{index}/{count}") in (EXIT_OK, EXIT_FAILED)
        assert "(whole bursts)" in capsys.readouterr().err
        rows = _rows(shard / "zamba_predictions.csv") + _rows(shard / "zamba_predictions_failures.csv")
        cameras = {Path(row["filepath"]).parent.name for row in rows}
        assert not cameras & set(cameras_seen)  # no camera's photos, so no burst, in two shards
        cameras_seen += cameras
        for camera in cameras:  # each camera whole
            assert sum(Path(row["filepath"]).parent.name == camera for row in rows) == len(list((card / camera).iterdir()))
    assert sorted(cameras_seen) == [f"cam{c}" for c in range(5)]
    assert main(["merge", *map(str, shards), "--out", str(tmp_path / "merged")]) == EXIT_FAILED
    assert f"merged {count} shards: 26 files, 1 failed" in capsys.readouterr().err
    assert_same_outputs(tmp_path / "one", tmp_path / "merged", SEQUENCE_OUTPUTS)
    sequences = _rows(tmp_path / "merged" / "zamba_predictions_sequences.csv")
    assert len({row["seq_id"] for row in sequences}) == 5 * 3  # 2 bursts and 1 untimed photo per camera
    assert (tmp_path / "merged" / "image_predict_configuration.yaml").is_file()


def test_given_seq_ids_keep_their_bursts_whole_across_folders(card, checkpoint, tmp_path, capsys):
    """A seq_id column may join photos of two folders: the shard follows the seq_id, not the folder."""
    listed = tmp_path / "photos.csv"
    photos = sorted(p for p in card.rglob("*.jpg") if p.name != "broken.jpg")
    with open(listed, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filepath", "seq_id"])
        for number, photo in enumerate(photos):
            writer.writerow([str(photo), f"pair{number // 2}"])  # pairs that straddle the cameras
    base = ["image", "predict", "--filepaths", str(listed), "--checkpoint", str(checkpoint), "--no-crop-images", "--num-workers", "0", "-q"]
    assert main([*base, "--save-dir", str(tmp_path / "one")]) == EXIT_OK
    shards = [tmp_path / "s1", tmp_path / "s2"]
    owner: dict[str, Path] = {}
    for index, shard in enumerate(shards, start=1):
        assert main([*base, "--save-dir", str(shard), "--shard", f"{index}/2"]) == EXIT_OK
        for row in _rows(shard / "zamba_predictions_sequences.csv"):
            assert owner.setdefault(row["seq_id"], shard) == shard
    assert len(owner) == len(photos) // 2 + len(photos) % 2
    capsys.readouterr()
    assert main(["merge", *map(str, shards), "--out", str(tmp_path / "merged")]) == EXIT_OK
    assert_same_outputs(tmp_path / "one", tmp_path / "merged", SEQUENCE_OUTPUTS[:1] + SEQUENCE_OUTPUTS[2:])


def test_predict_with_photos_beside_the_videos_shards_both_and_merges_both(tmp_path, capsys, monkeypatch):
    from kifaru.models.registry import LILA_SCIENCE

    folder = tmp_path / "card"
    for camera in range(3):
        make_clip(folder / f"cam{camera}" / "clip.mp4", n_frames=20 + camera)
        for shot in range(2):
            drawn_photo(camera * 2 + shot).save(folder / f"cam{camera}" / f"photo{shot}.jpg")
    species = [f"class_{i:03d}" for i in range(LILA_SCIENCE.num_classes)]  # checked against the official model's
    image_checkpoint = write_image_checkpoint(tmp_path / "lila.ckpt", species=species, image_size=LILA_SCIENCE.image_size)
    monkeypatch.setenv(LILA_SCIENCE.weights_env_var, str(image_checkpoint))
    checkpoint = write_tiny_checkpoint(tmp_path / "video.ckpt")
    base = ["predict", "--data-dir", str(folder), "--checkpoint", str(checkpoint), "--photos", "image", "--num-workers", "0", "-q"]
    assert main([*base, "--save-dir", str(tmp_path / "one")]) == EXIT_OK
    shards = [tmp_path / "s1", tmp_path / "s2"]
    for index, shard in enumerate(shards, start=1):
        assert main([*base, "--save-dir", str(shard), "--shard", f"{index}/2"]) == EXIT_OK
    capsys.readouterr()
    assert main(["merge", *map(str, shards), "--out", str(tmp_path / "merged")]) == EXIT_OK
    err = capsys.readouterr().err
    assert "merged 2 shards: 3 files, 0 failed" in err and "and the photos beside them: 6 photos, 0 failed" in err
    outputs = ["zamba_predictions.csv", RESULTS_FILE, "zamba_image_predictions.csv", IMAGE_RESULTS_FILE]
    assert_same_outputs(tmp_path / "one", tmp_path / "merged", outputs)
