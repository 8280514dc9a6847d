"""Shards (``--shard I/N``) and ``kifaru merge``: N shards merged give the outputs of one run, and
shards that are not of one run are refused."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from kifaru.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from kifaru.exceptions import ConfigError
from kifaru.outputs.results_file import RESULTS_FILE
from kifaru.runs.detect import detect_files
from kifaru.runs.inputs import items_from
from kifaru.runs.merge import merge_shards
from kifaru.runs.shards import Shard, select_shard
from tests.detection.fakes import IndexScoringDetector
from tests.helpers.outputs import assert_same_outputs
from tests.media import make_clip
from tests.models.tiny_model import write_tiny_checkpoint

SCORES = {10: 0.9, 20: 0.3, 110: 0.2, 215: 0.6}





def test_shard_parsing_says_what_to_give():
    assert Shard.parse("2/8") == Shard(2, 8) and str(Shard.parse(" 1 / 3 ")) == "1/3"
    for bad in ("0/3", "4/3", "2", "a/b", "1/0"):
        with pytest.raises(ConfigError, match="--shard"):
            Shard.parse(bad)


@pytest.mark.parametrize("count", [1, 2, 3])
def test_every_file_is_in_exactly_one_shard_whatever_the_order_and_the_mount(tmp_path, count):
    names = [f"card/cam{c}/clip{i:03d}.mp4" for c in range(3) for i in range(40)]
    here = items_from([str(tmp_path / "a" / n) for n in names])
    shuffled = names[:]
    random.Random(0).shuffle(shuffled)
    elsewhere = items_from([str(tmp_path / "mnt" / "b" / n) for n in shuffled])  # another machine's mount, another order
    seen = []
    for index in range(1, count + 1):
        mine = select_shard(here, Shard(index, count), tmp_path)
        theirs = select_shard(elsewhere, Shard(index, count), tmp_path)
        relative = sorted(Path(i.name).relative_to(tmp_path / "a").as_posix() for i in mine.items)
        assert relative == sorted(Path(i.name).relative_to(tmp_path / "mnt" / "b").as_posix() for i in theirs.items)
        assert [i.index for i in mine.items] == list(range(len(mine.items)))  # numbered again
        assert [here[p].name for p in mine.positions] == [i.name for i in mine.items]
        seen += relative
    assert sorted(seen) == sorted(names)
    if count > 1:  # a hash spreads them: no shard is empty or holds almost all
        assert all(0.5 / count < len(select_shard(here, Shard(i, count), tmp_path).items) / len(names) < 1.5 / count for i in range(1, count + 1))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    files = [make_clip(folder / f"cam{i % 2}" / f"clip{i}.mp4", n_frames=12 + 3 * i, fps=4, size=(64, 96)) for i in range(7)]
    (folder / "cam1" / "broken.mp4").write_bytes(b"not a video at all")
    return folder, sorted(files + [folder / "cam1" / "broken.mp4"])


@pytest.mark.parametrize("count", [1, 2, 3])
def test_detect_shards_merged_are_the_run_made_in_one_go(clips, tmp_path, count):
    folder, files = clips
    settings = dict(relative_to=folder, num_workers=0)
    one = tmp_path / "one"
    detect_files(files, one, detector=IndexScoringDetector(SCORES), **settings)
    shards = []
    for index in range(1, count + 1):
        shards.append(tmp_path / f"shard{index}")
        detect_files(files, shards[-1], detector=IndexScoringDetector(SCORES), shard=Shard(index, count), **settings)
    merged = merge_shards(shards, tmp_path / "merged")
    assert [r.item for r in merged.records] == [str(f) for f in files]
    assert_same_outputs(one, tmp_path / "merged", ["detections.json", "detection_summary.csv", "segments.csv", RESULTS_FILE])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.ckpt")


def predict(folder, checkpoint, out, *extra):
    argv = ["predict", "--num-workers", "0", "--data-dir", str(folder), "--checkpoint", str(checkpoint), "--save-dir", str(out)]
    return main([*argv, "--output-format", "csv,megadetector", *extra])


@pytest.mark.parametrize("count", [1, 2, 3])
def test_predict_shards_merged_through_the_command_line_are_the_run_made_in_one_go(clips, checkpoint, tmp_path, capsys, count):
    folder, _ = clips
    assert predict(folder, checkpoint, tmp_path / "one") == EXIT_FAILED  # broken.mp4
    shards = [tmp_path / f"shard{i}" for i in range(1, count + 1)]
    for index, shard in enumerate(shards, start=1):
        assert predict(folder, checkpoint, shard, "--shard", f"{index}/{count}") in (EXIT_OK, EXIT_FAILED)
    capsys.readouterr()
    assert main(["merge", *map(str, shards), "--out", str(tmp_path / "merged")]) == EXIT_FAILED  # the broken file's failure, as one run
    assert f"merged {count} shards: 8 files, 1 failed" in capsys.readouterr().err
    names = ["zamba_predictions.csv", "zamba_predictions_failures.csv", "megadetector_predictions.json", RESULTS_FILE]
    assert_same_outputs(tmp_path / "one", tmp_path / "merged", [n for n in names if (tmp_path / "one" / n).exists()])
    configuration = yaml.safe_load((tmp_path / "merged" / "predict_configuration.yaml").read_text())
    assert configuration["predict_config"]["save_dir"] == str(tmp_path / "merged")


def test_shards_that_are_not_one_run_are_refused_naming_why(clips, checkpoint, tmp_path, capsys):
    folder, files = clips
    settings = dict(relative_to=folder, num_workers=0)
    a, b, c = (tmp_path / name for name in ("a", "b", "c"))
    detect_files(files, a, detector=IndexScoringDetector(SCORES), shard=Shard(1, 2), **settings)
    detect_files(files, b, detector=IndexScoringDetector(SCORES), shard=Shard(2, 2), threshold=0.5, **settings)
    with pytest.raises(ConfigError, match="is not a shard of the same run"):
        merge_shards([a, b], tmp_path / "m1")
    with pytest.raises(ConfigError, match=r"shard 1/2 is given twice"):
        merge_shards([a, a], tmp_path / "m2")
    with pytest.raises(ConfigError, match=r"shard\(s\) 2/2 missing"):
        merge_shards([a], tmp_path / "m3")
    detect_files(files, c, detector=IndexScoringDetector(SCORES), **settings)
    with pytest.raises(ConfigError, match="made without --shard"):
        merge_shards([a, c], tmp_path / "m4")
    # The same files in two shards (a results file edited, or copied between shard folders).
    d = tmp_path / "d"
    detect_files(files, d, detector=IndexScoringDetector(SCORES), shard=Shard(2, 2), **settings)
    lines = (d / RESULTS_FILE).read_text().splitlines()
    first_of_a = (a / RESULTS_FILE).read_text().splitlines()[1]
    (d / RESULTS_FILE).write_text("\n".join([lines[0], first_of_a, *lines[2:]]) + "\n")
    with pytest.raises(ConfigError, match="is in two shards"):
        merge_shards([a, d], tmp_path / "m5")
    assert main(["merge", str(a), "--out", str(tmp_path / "m7")]) == EXIT_USAGE
    assert "2/2 missing" in capsys.readouterr().err


def test_a_merge_does_not_write_over_results_unless_asked(clips, tmp_path):
    folder, files = clips
    settings = dict(relative_to=folder, num_workers=0)
    shards = [tmp_path / "s1", tmp_path / "s2"]
    for index, shard in enumerate(shards, start=1):
        detect_files(files, shard, detector=IndexScoringDetector(SCORES), shard=Shard(index, 2), **settings)
    merge_shards(shards, tmp_path / "merged")
    with pytest.raises(ConfigError, match="--overwrite"):
        merge_shards(shards, tmp_path / "merged")
    merge_shards(shards, tmp_path / "merged", overwrite=True)


def test_a_shard_folder_keeps_its_shard_a_rerun_with_another_is_refused(clips, tmp_path):
    folder, files = clips
    settings = dict(relative_to=folder, num_workers=0)
    detect_files(files, tmp_path / "s", detector=IndexScoringDetector(SCORES), shard=Shard(1, 2), **settings)
    with pytest.raises(ConfigError, match="shard"):
        detect_files(files, tmp_path / "s", detector=IndexScoringDetector(SCORES), shard=Shard(2, 2), **settings)
