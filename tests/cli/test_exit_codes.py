"""One exit-code rule for every command (kifaru.cli): 0 every file has a result; 1 the run finished
and some files have failure records, or an input could not be used; 2 a bad command line or
configuration; 130 interrupted. Each command's codes, through ``main(argv)``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from kifaru.cli import EXIT_CODES_HELP, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, exit_code_for, main
from tests.detection.fakes import IndexScoringDetector
from tests.media import index_frame, make_clip
from tests.models.tiny_model import write_tiny_checkpoint

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_codes_and_the_rule_from_a_report():
    assert (EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED) == (0, 1, 2, 130)
    assert [exit_code_for(failed) for failed in (0, 1, 3, 10)] == [EXIT_OK, EXIT_FAILED, EXIT_FAILED, EXIT_FAILED]


@pytest.mark.parametrize("command", [[], ["detect"], ["predict"], ["train"], ["frames"]])
def test_help_states_the_codes(command, capsys):
    assert main([*command, "--help"]) == EXIT_OK
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps the epilog
    assert " ".join(EXIT_CODES_HELP.split()) in help_text


def test_the_readme_states_the_same_codes():
    text = README.read_text(encoding="utf-8")
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    stated = {int(code): meaning for code, meaning in re.findall(r"^- `(\d+)`: (.+)$", section, re.M)}
    assert set(stated) == {EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED}
    assert "failure record" in stated[EXIT_FAILED] and "configuration" in stated[EXIT_USAGE]


# -- detect, with a stand-in detector --------------------------------------------------------


@pytest.fixture
def stand_in_detector(monkeypatch) -> IndexScoringDetector:
    import kifaru.detection.megadetector_lite as module

    detector = IndexScoringDetector({50: 0.9})
    monkeypatch.setattr(module, "load_megadetector_lite", lambda **kwargs: detector)
    return detector


def photos(folder: Path, good: int, broken: int) -> Path:
    folder.mkdir()
    for i in range(good):
        Image.fromarray(index_frame(50)).save(folder / f"good_{i}.jpg")
    for i in range(broken):
        (folder / f"broken_{i}.jpg").write_bytes(b"not a picture")
    return folder


def test_detect_exits_1_when_3_of_10_files_failed_and_0_when_none_did(tmp_path, stand_in_detector, capsys):
    folder = photos(tmp_path / "some_broken", good=7, broken=3)
    assert main(["detect", "--data-dir", str(folder), "--save-dir", str(tmp_path / "out"), "-q", "--num-workers", "0"]) == EXIT_FAILED
    assert "10 files: 7 with an animal, 0 blank, 3 failed" in capsys.readouterr().out
    good = photos(tmp_path / "all_good", good=2, broken=0)
    assert main(["detect", "--data-dir", str(good), "--save-dir", str(tmp_path / "out2"), "-q", "--num-workers", "0"]) == EXIT_OK


def test_detect_exits_2_on_a_bad_command_line_before_any_file_is_read(tmp_path, stand_in_detector):
    folder = photos(tmp_path / "photos", good=1, broken=0)
    assert main(["detect", "--data-dir", str(folder), "--fps", "-1"]) == EXIT_USAGE
    assert main(["detect", "--data-dir", str(folder), "--no-such-option"]) == EXIT_USAGE
    assert stand_in_detector.calls == []


# -- predict, with the tiny model ------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.ckpt")


def test_predict_exits_0_when_every_file_has_a_prediction_and_1_when_one_has_not(tmp_path, checkpoint, capsys):
    clips = tmp_path / "clips"
    make_clip(clips / "a.mp4", n_frames=20)
    predict = ["predict", "--num-workers", "0", "--data-dir", str(clips), "--checkpoint", str(checkpoint), "-q"]
    assert main([*predict, "--save-dir", str(tmp_path / "all")]) == EXIT_OK
    (clips / "cut.mp4").write_bytes((clips / "a.mp4").read_bytes()[:300])
    assert main([*predict, "--save-dir", str(tmp_path / "some")]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "predicted, 1 failed" in out and (tmp_path / "some" / "zamba_predictions.csv").is_file()


def test_predict_exits_2_on_a_bad_option_and_1_on_a_checkpoint_that_cannot_be_used(tmp_path, checkpoint):
    clips = tmp_path / "clips"
    make_clip(clips / "a.mp4", n_frames=20)
    assert main(["predict", "--data-dir", str(clips), "--checkpoint", str(checkpoint), "--batch-size", "0"]) == EXIT_USAGE
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    assert main(["predict", "--data-dir", str(clips), "--checkpoint", str(junk), "--save-dir", str(tmp_path / "o")]) == EXIT_FAILED


# -- train: clips left out as unreadable -----------------------------------------------------


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_train_exits_1_and_says_why_when_clips_were_left_out_as_unreadable(tmp_path, capsys):
    from kifaru.train.synthetic import write_training_set

    labels = write_training_set(tmp_path / "clips", clips_per_class=3, n_frames=4)
    (tmp_path / "clips" / "broken.mp4").write_bytes(b"not a video")
    with open(labels, "a", encoding="utf-8") as handle:
        handle.write("broken.mp4,red_square\n")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"train_config:\n  labels: {labels}\n  data_dir: {tmp_path / 'clips'}\n  from_scratch: true\n"
        "  backbone: test_efficientnet\n  backbone_pretrained: false\n  max_epochs: 1\n  batch_size: 4\n  num_workers: 0\n"
        f"video_loader_config:\n  fps: 4\n  total_frames: 4\n  model_input_height: 48\n  model_input_width: 64\n"
        f"  cache_dir: {tmp_path / 'frames'}\n"
    )
    assert main(["train", "--config", str(config), "--save-dir", str(tmp_path / "out")]) == EXIT_FAILED
    captured = capsys.readouterr()
    assert "on 9 clips (1 left out)" in captured.out  # it trained, on the clips that can be read
    failures = tmp_path / "out" / "version_0" / "failures.csv"
    assert f"exit code 1: 1 clip left out of training: unreadable ({failures})" in captured.err
    assert "broken.mp4" in failures.read_text()



def test_train_exits_1_when_no_labelled_clip_can_be_read(tmp_path, capsys):
    """Unusable inputs, not a bad command line: 1, naming the labels file, and no version_N left."""
    labels = tmp_path / "labels.csv"
    labels.write_text("filepath,label\nnope.mp4,dog\nnada.mp4,cat\n")
    (tmp_path / "nope.mp4").write_bytes(b"")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"train_config:\n  labels: {labels}\n  data_dir: {tmp_path}\n  from_scratch: true\n"
        "  backbone: test_efficientnet\n  backbone_pretrained: false\n  max_epochs: 1\n  num_workers: 0\n"
        f"video_loader_config:\n  fps: 4\n  total_frames: 4\n  model_input_height: 48\n  model_input_width: 64\n"
        f"  cache_dir: {tmp_path / 'frames'}\n"
    )
    assert main(["train", "--config", str(config), "--save-dir", str(tmp_path / "out")]) == EXIT_FAILED
    assert f"labels {labels}: none of its 2 clips could be read" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("version_*"))


# -- frames ----------------------------------------------------------------------------------


def test_frames_exits_0_1_and_2(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", n_frames=10)
    assert main(["frames", str(clip)]) == EXIT_OK
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert main(["frames", str(tmp_path / "empty.mp4")]) == EXIT_FAILED  # a file that cannot be used
    assert main(["frames", str(clip), "--set", "fps=-1"]) == EXIT_USAGE
