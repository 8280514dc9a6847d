"""`kifaru config check FILE.yaml`: exit codes and what it prints."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from kifaru.cli import EXIT_OK, EXIT_USAGE, main
from kifaru.cli.options import video_loader_config
from kifaru.config import VideoLoaderConfig, load_config_file
from kifaru.config.files import validate_config


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_exit_codes_are_the_documented_ones():
    assert (EXIT_OK, EXIT_USAGE) == (0, 2)


def test_check_valid_file_returns_0_and_prints_the_resolved_config(tmp_path, capsys):
    path = write(tmp_path, """\
        video_loader_config:
          fps: 4
          megadetector_lite_config:
            n_frames: 16
        """)
    assert main(["config", "check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert str(path) in out
    assert "valid" in out
    assert "total_frames: 16" in out  # filled from megadetector_lite_config.n_frames
    assert "nms_threshold: 0.45" in out  # a default, resolved
    assert "pix_fmt: rgb24" in out


def test_check_output_is_yaml_that_loads_back_to_the_same_config(tmp_path, capsys):
    path = write(tmp_path, """\
        video_loader_config:
          total_frames: 16
          megadetector_lite_config: {}
        predict_config:
          model_name: blank_nonblank
          proba_threshold: 0.3
        """)
    assert main(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out
    printed = validate_config(yaml.safe_load(out))
    assert printed == load_config_file(path)
    assert printed.video_loader_config.megadetector_lite_config.n_frames == 16


def test_check_empty_file_returns_0(tmp_path, capsys):
    assert main(["config", "check", str(write(tmp_path, ""))]) == 0
    assert "valid" in capsys.readouterr().out


def test_check_misspelled_key_returns_2_naming_file_and_suggestion(tmp_path, capsys):
    path = write(tmp_path, "video_loader_config:\n  fsp: 4\n", name="typo.yaml")
    assert main(["config", "check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # no half-resolved config printed
    assert str(path) in err
    assert "video_loader_config" in err
    assert "did you mean 'fps'" in err


def test_check_misspelled_nested_key_returns_2(tmp_path, capsys):
    path = write(tmp_path, "video_loader_config:\n  megadetector_lite_config:\n    confidnce: 0.3\n")
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "video_loader_config.megadetector_lite_config" in err
    assert "did you mean 'confidence'" in err


def test_check_missing_file_returns_2_naming_it(tmp_path, capsys):
    path = tmp_path / "missing.yaml"
    assert main(["config", "check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert str(path) in err


def test_check_invalid_yaml_returns_2(tmp_path, capsys):
    path = write(tmp_path, "video_loader_config: {fps: 4\n", name="broken.yaml")
    assert main(["config", "check", str(path)]) == 2
    assert str(path) in capsys.readouterr().err


def test_check_rejected_combination_returns_2_naming_both_fields(tmp_path, capsys):
    path = write(tmp_path, "video_loader_config:\n  fps: 4\n  i_frames: true\n")
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "fps" in err and "i_frames" in err


def test_missing_file_argument_is_a_usage_error(capsys):
    # argparse reports usage errors by raising SystemExit(2); either way the status is 2.
    try:
        status = main(["config", "check"])
    except SystemExit as exit_:
        status = exit_.code
    assert status == 2
    assert "FILE.yaml" in capsys.readouterr().err


# --- precedence for `kifaru frames --config FILE --set FIELD=VALUE` ---------------------------

def test_set_overrides_a_value_from_the_file(tmp_path):
    path = write(tmp_path, "video_loader_config:\n  fps: 4\n  total_frames: 16\n")
    config = video_loader_config(path, {"fps": 8})
    assert config.fps == 8
    assert config.total_frames == 16


@pytest.mark.parametrize(
    "yaml_text, override",
    [
        (
            "video_loader_config:\n  total_frames: 16\n  megadetector_lite_config: {}\n",
            {"total_frames": 32},
        ),
        (
            "video_loader_config:\n  megadetector_lite_config:\n    n_frames: 16\n",
            {"megadetector_lite_config": {"n_frames": 8}},
        ),
    ],
    ids=["set-total_frames", "set-n_frames"],
)
def test_set_override_gives_the_same_config_as_writing_it_in_the_file(tmp_path, yaml_text, override):
    path = write(tmp_path, yaml_text)
    written = yaml.safe_load(yaml_text)["video_loader_config"]
    written.update(override)
    assert video_loader_config(path, override) == VideoLoaderConfig.model_validate(written)


# -- as a new user: only the required argument -----------------------------------------------------


def test_check_a_minimal_file_as_a_new_user(new_user, capsys):
    (new_user.work / "config.yaml").write_text("video_loader_config:\n  fps: 4\n", encoding="utf-8")
    assert main(["config", "check", "config.yaml"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.startswith("# config.yaml: valid.")
    printed = yaml.safe_load(out)  # the header is a YAML comment: the whole output is YAML
    assert printed["video_loader_config"]["fps"] == 4
    assert validate_config(printed) == load_config_file(new_user.work / "config.yaml")
    # Checking a file fetches and writes nothing.
    assert sorted(p.name for p in new_user.work.iterdir()) == ["config.yaml"]
    assert not new_user.model_cache.exists()


def test_check_a_misspelled_key_as_a_new_user(new_user, capsys):
    (new_user.work / "config.yaml").write_text("video_loader_config:\n  total_frame: 16\n", encoding="utf-8")
    assert main(["config", "check", "config.yaml"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "config.yaml" in err and "did you mean 'total_frames'" in err
