"""YAML config files in the zamba layout: loading, errors that name the file, and dumping."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import yaml

from kifaru.config import (
    KifaruConfig,
    MegadetectorLiteConfig,
    PredictConfig,
    TrainConfig,
    VideoLoaderConfig,
    dump_config,
    load_config_file,
)
from kifaru.exceptions import ConfigError


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- loading ----------------------------------------------------------------------------------

def test_all_three_sections_load(tmp_path):
    path = write(tmp_path, """\
        video_loader_config:
          fps: 4
          total_frames: 16
          crop_bottom_pixels: 50
        predict_config:
          model_name: european
          batch_size: 4
          proba_threshold: 0.5
        train_config:
          labels: labels.csv
          max_epochs: 3
          early_stopping_config:
            monitor: val_loss
        """)
    config = load_config_file(path)
    assert isinstance(config, KifaruConfig)
    assert config.video_loader_config == VideoLoaderConfig(fps=4, total_frames=16, crop_bottom_pixels=50)
    assert config.predict_config == PredictConfig(model_name="european", batch_size=4, proba_threshold=0.5)
    assert isinstance(config.train_config, TrainConfig)
    assert config.train_config.labels == Path("labels.csv")
    assert config.train_config.max_epochs == 3
    assert config.train_config.early_stopping_config.mode == "min"


def test_sections_are_optional(tmp_path):
    config = load_config_file(write(tmp_path, "predict_config:\n  model_name: slowfast\n"))
    assert config.video_loader_config is None
    assert config.train_config is None
    assert config.predict_config.model_name == "slowfast"


def test_a_section_left_empty_is_none(tmp_path):
    config = load_config_file(write(tmp_path, "video_loader_config:\n"))
    assert config.video_loader_config is None


def test_load_accepts_a_string_path(tmp_path):
    path = write(tmp_path, "video_loader_config:\n  fps: 2\n")
    assert load_config_file(str(path)).video_loader_config.fps == 2


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file_gives_an_empty_config(tmp_path, text):
    config = load_config_file(write(tmp_path, text))
    assert config == KifaruConfig()
    assert (config.video_loader_config, config.predict_config, config.train_config) == (None, None, None)


def test_nested_megadetector_section_loads_with_auto_fill(tmp_path):
    path = write(tmp_path, """\
        video_loader_config:
          megadetector_lite_config:
            confidence: 0.3
            n_frames: 16
        """)
    video = load_config_file(path).video_loader_config
    assert video.megadetector_lite_config == MegadetectorLiteConfig(confidence=0.3, n_frames=16)
    assert video.total_frames == 16


# --- file problems ----------------------------------------------------------------------------

def test_missing_file_is_a_config_error_naming_it(tmp_path):
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError) as excinfo:
        load_config_file(path)
    assert str(path) in str(excinfo.value)


def test_directory_is_a_config_error_naming_it(tmp_path):
    folder = tmp_path / "a_folder.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError) as excinfo:
        load_config_file(folder)
    assert str(folder) in str(excinfo.value)


@pytest.mark.parametrize("text", [
    "video_loader_config: {fps: 4\n",
    "video_loader_config:\n  fps: 4\n fps: 5\n",
    "video_loader_config:\n\tfps: 4\n",
])
def test_invalid_yaml_is_a_config_error_naming_the_file(tmp_path, text):
    path = write(tmp_path, text, name="broken.yaml")
    with pytest.raises(ConfigError) as excinfo:
        load_config_file(path)
    assert str(path) in str(excinfo.value)
    assert "YAML" in str(excinfo.value)


@pytest.mark.parametrize("text", ["- fps: 4\n- total_frames: 16\n", "just a string\n", "42\n"])
def test_yaml_that_is_not_a_mapping_is_a_config_error_naming_the_file(tmp_path, text):
    path = write(tmp_path, text, name="not_a_mapping.yaml")
    with pytest.raises(ConfigError) as excinfo:
        load_config_file(path)
    assert str(path) in str(excinfo.value)
    assert "mapping" in str(excinfo.value)


def test_config_error_is_a_value_error(tmp_path):
    with pytest.raises(ValueError):
        load_config_file(tmp_path / "nowhere.yaml")


# --- validation problems name the file, the location and the fix ------------------------------

def problem_lines(error: ConfigError) -> list[str]:
    return str(error).splitlines()[1:]


def test_misspelled_top_level_section(tmp_path):
    path = write(tmp_path, "video_loader_confg:\n  fps: 4\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config_file(path)
    message = str(excinfo.value)
    assert message.startswith(str(path))
    assert "'video_loader_confg'" in message
    assert "did you mean 'video_loader_config'" in message
    assert any(line.strip().startswith("(top level):") for line in problem_lines(excinfo.value))


def test_misspelled_key_in_a_section(tmp_path):
    path = write(tmp_path, "video_loader_config:\n  fsp: 4\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config_file(path)
    message = str(excinfo.value)
    assert message.startswith(str(path))
    assert re.search(r"^\s*video_loader_config: unknown field 'fsp' \(did you mean 'fps'\?\)", message, re.M)


def test_misspelled_nested_key(tmp_path):
    path = write(tmp_path, """\
        video_loader_config:
          fps: 4
          megadetector_lite_config:
            confidnce: 0.3
        """)
    with pytest.raises(ConfigError) as excinfo:
        load_config_file(path)
    message = str(excinfo.value)
    assert message.startswith(str(path))
    assert re.search(
        r"^\s*video_loader_config\.megadetector_lite_config: unknown field 'confidnce' "
        r"\(did you mean 'confidence'\?\)",
        message,
        re.M,
    ), message


def test_misspelled_key_in_predict_section(tmp_path):
    path = write(tmp_path, "predict_config:\n  batch_sise: 4\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config_file(path)
    assert re.search(
        r"^\s*predict_config: unknown field 'batch_sise' \(did you mean 'batch_size'\?\)",
        str(excinfo.value),
        re.M,
    )


def test_bad_nested_value_gives_the_full_dotted_location(tmp_path):
    path = write(tmp_path, """\
        video_loader_config:
          megadetector_lite_config:
            fill_mode: sorted
        """)
    with pytest.raises(ConfigError) as excinfo:
        load_config_file(path)
    assert any(
        line.strip().startswith("video_loader_config.megadetector_lite_config.fill_mode:")
        for line in problem_lines(excinfo.value)
    ), str(excinfo.value)


def test_problems_in_several_sections_are_all_reported(tmp_path):
    path = write(tmp_path, """\
        video_loader_config:
          fps: 4
          i_frames: true
        predict_config:
          proba_threshold: 2
        """)
    with pytest.raises(ConfigError) as excinfo:
        load_config_file(path)
    lines = problem_lines(excinfo.value)
    assert any(line.strip().startswith("video_loader_config:") and "i_frames" in line for line in lines)
    assert any(line.strip().startswith("predict_config.proba_threshold:") for line in lines)


def test_problem_messages_drop_pydantics_value_error_prefix(tmp_path):
    path = write(tmp_path, "video_loader_config:\n  fsp: 4\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config_file(path)
    assert "Value error," not in str(excinfo.value)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("fps: -1", "video_loader_config.fps: Input should be greater than 0 (got -1)"),
        ("fps: fast", "video_loader_config.fps: Input should be a valid number, unable to parse string as a number (got 'fast')"),
        ("crop_bottom_pixels: [1, 2]", "video_loader_config.crop_bottom_pixels: Input should be a valid integer (got [1, 2])"),
        # kifaru's own messages name the value already: not said twice
        ("pix_fmt: yuv", "video_loader_config.pix_fmt: pix_fmt 'yuv' is not supported: use rgb24 or bgr24"),
    ],
)
def test_a_bad_value_is_echoed_once(tmp_path, text, line):
    path = write(tmp_path, f"video_loader_config:\n  {text}\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config_file(path)
    assert problem_lines(excinfo.value) == [f"  {line}"]


# --- layers: a file, --set, options; each problem named by the layer that gave it --------------


def test_each_problem_is_reported_as_coming_from_the_layer_that_gave_it():
    from kifaru.config.files import validate_layered_config

    layers = [
        ("f.yaml", {"video_loader_config": {"fps": 2, "total_frames": 0}, "predict_config": {"batch_size": 2}}),
        ("--set crop_bottom_pixels=-3", {"video_loader_config": {"crop_bottom_pixels": -3}}),
        ("--batch-size 0", {"predict_config": {"batch_size": 0}}),
    ]
    with pytest.raises(ConfigError) as excinfo:
        validate_layered_config(layers)
    assert str(excinfo.value).splitlines() == [
        "f.yaml: invalid configuration",
        "  video_loader_config.total_frames: Input should be greater than 0 (got 0)",
        "--set crop_bottom_pixels=-3: invalid configuration",
        "  video_loader_config.crop_bottom_pixels: Input should be greater than or equal to 0 (got -3)",
        "--batch-size 0: invalid configuration",
        "  predict_config.batch_size: Input should be greater than 0 (got 0)",
    ]


def test_a_later_layer_replacing_a_bad_value_fixes_it_and_one_giving_another_bad_value_is_named():
    from kifaru.config.files import validate_layered_config

    bad_file = ("f.yaml", {"video_loader_config": {"fps": -1, "megadetector_lite_config": {"n_frames": 8}}})
    config = validate_layered_config([bad_file, ("--fps 2", {"video_loader_config": {"fps": 2.0}})])
    assert config.video_loader_config.fps == 2.0
    assert config.video_loader_config.megadetector_lite_config.n_frames == 8  # merged, field by field
    with pytest.raises(ConfigError, match=r"^--fps -2: invalid configuration\n.*\(got -2.0\)$"):
        validate_layered_config([bad_file, ("--fps -2", {"video_loader_config": {"fps": -2.0}})])


def test_a_clash_within_the_file_stays_the_files_when_another_layer_sets_an_unrelated_field():
    from kifaru.config.files import validate_layered_config

    layers = [
        ("f.yaml", {"video_loader_config": {"fps": 2, "evenly_sample_total_frames": True, "total_frames": 4}}),
        ("--set crop_bottom_pixels=4", {"video_loader_config": {"crop_bottom_pixels": 4}}),
    ]
    with pytest.raises(ConfigError) as excinfo:
        validate_layered_config(layers)
    assert str(excinfo.value).splitlines()[0] == "f.yaml: invalid configuration"
    assert "fps cannot be used with evenly_sample_total_frames" in str(excinfo.value)


# --- dumping ----------------------------------------------------------------------------------

ROUND_TRIP_YAML = """\
video_loader_config:
  crop_bottom_pixels: 50
  fps: 4
  frame_selection_height: 480
  frame_selection_width: 640
  model_input_height: 240
  model_input_width: 426
  pix_fmt: bgr24
  ensure_total_frames: false
  cache_dir: {cache_dir}
  cleanup_cache: true
  megadetector_lite_config:
    confidence: 0.3
    image_width: 416
    image_height: 416
    n_frames: 16
    fill_mode: weighted_prob
    sort_by_time: false
    device: cpu
predict_config:
  checkpoint: model.ckpt
  model_name: null
  proba_threshold: 0.5
  weight_download_region: eu
  save_dir: out
  batch_size: 4
train_config:
  labels: labels.csv
  model_name: european
  scheduler_config:
    scheduler: MultiStepLR
    scheduler_params:
      milestones: [3]
      gamma: 0.5
  early_stopping_config:
    monitor: val_loss
    patience: 2
  backbone_finetune_config:
    unfreeze_backbone_at_epoch: 2
  split_proportions:
    train: 4
    val: 1
  max_epochs: 10
"""


def test_dump_then_load_gives_an_equal_config(tmp_path):
    original = load_config_file(
        write(tmp_path, ROUND_TRIP_YAML.format(cache_dir=tmp_path / "cache"), name="in.yaml")
    )
    text = dump_config(original)
    reloaded = load_config_file(write(tmp_path, text, name="out.yaml"))
    assert reloaded == original
    assert dump_config(reloaded) == text


def test_dump_writes_resolved_values(tmp_path):
    config = load_config_file(
        write(tmp_path, ROUND_TRIP_YAML.format(cache_dir=tmp_path / "cache"))
    )
    dumped = yaml.safe_load(dump_config(config))
    video = dumped["video_loader_config"]
    assert video["total_frames"] == 16  # auto-filled from n_frames
    assert video["i_frames"] is False  # a default, written out
    assert video["megadetector_lite_config"]["nms_threshold"] == 0.45
    assert dumped["train_config"]["early_stopping_config"]["mode"] == "min"
    assert dumped["predict_config"]["weight_download_region"] == "eu"
    assert dumped["predict_config"]["checkpoint"] == "model.ckpt"


def test_dump_of_frame_indices_config_round_trips(tmp_path):
    original = VideoLoaderConfig(frame_indices=[0, 4, 8], fps=2.0, model_input_height=240, model_input_width=426)
    reloaded = VideoLoaderConfig.model_validate(yaml.safe_load(dump_config(original)))
    assert reloaded == original


def test_dump_of_an_empty_config_round_trips(tmp_path):
    text = dump_config(KifaruConfig())
    assert load_config_file(write(tmp_path, text)) == KifaruConfig()


def test_dump_is_plain_yaml(tmp_path):
    config = KifaruConfig(video_loader_config=VideoLoaderConfig(cache_dir=tmp_path, fps=4))
    text = dump_config(config)
    assert "!!" not in text  # no python-specific tags (Path, Enum)
    assert yaml.safe_load(text)["video_loader_config"]["cache_dir"] == str(tmp_path)


# --- loading twice ----------------------------------------------------------------------------

def test_loading_twice_gives_equal_independent_objects(tmp_path):
    path = write(tmp_path, ROUND_TRIP_YAML.format(cache_dir=tmp_path / "cache"))
    first = load_config_file(path)
    second = load_config_file(path)
    assert first == second
    assert first is not second
    assert first.video_loader_config is not second.video_loader_config
    assert first.video_loader_config.megadetector_lite_config is not second.video_loader_config.megadetector_lite_config
    assert first.train_config.split_proportions is not second.train_config.split_proportions
    assert first.train_config.scheduler_config.scheduler_params is not second.train_config.scheduler_config.scheduler_params


def test_a_loaded_config_does_not_follow_later_file_changes(tmp_path):
    path = write(tmp_path, "video_loader_config:\n  fps: 4\n")
    first = load_config_file(path)
    path.write_text("video_loader_config:\n  fps: 8\n", encoding="utf-8")
    second = load_config_file(path)
    assert first.video_loader_config.fps == 4
    assert second.video_loader_config.fps == 8
