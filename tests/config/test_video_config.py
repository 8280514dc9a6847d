"""VideoLoaderConfig and MegadetectorLiteConfig: zamba 2.7.2's fields, defaults and rules
(spec sections 2 and 3), plus kifaru's stricter checks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from kifaru.config import FillMode, MegadetectorLiteConfig, VideoLoaderConfig, dump_config, resolve_cache_dir


def messages(excinfo: pytest.ExceptionInfo) -> str:
    """The error messages only. str(ValidationError) also repeats the input dict, which names
    every given field, so assertions about field names must look at the messages alone."""
    return " | ".join(error["msg"] for error in excinfo.value.errors())


def names(message: str, field: str) -> bool:
    """Whether `message` names `field` as a whole word (total_frames is not
    evenly_sample_total_frames)."""
    return re.search(rf"(?<![A-Za-z_]){re.escape(field)}(?![A-Za-z_])", message) is not None


# --- defaults ---------------------------------------------------------------------------------

SPEC_VIDEO_DEFAULTS = {
    "crop_bottom_pixels": None,
    "i_frames": False,
    "scene_threshold": None,
    "megadetector_lite_config": None,
    "frame_selection_height": None,
    "frame_selection_width": None,
    "total_frames": None,
    "ensure_total_frames": True,
    "fps": None,
    "early_bias": False,
    "frame_indices": None,
    "evenly_sample_total_frames": False,
    "pix_fmt": "rgb24",
    "model_input_height": None,
    "model_input_width": None,
    "cache_dir": None,
    "cleanup_cache": False,
}


def test_video_loader_defaults_are_exactly_the_spec_fields_and_values():
    assert VideoLoaderConfig().model_dump() == SPEC_VIDEO_DEFAULTS


@pytest.mark.parametrize("field, default", sorted(SPEC_VIDEO_DEFAULTS.items()))
def test_each_video_loader_default(field, default):
    assert getattr(VideoLoaderConfig(), field) == default


def test_empty_mapping_validates_to_the_defaults():
    assert VideoLoaderConfig.model_validate({}) == VideoLoaderConfig()


# --- rejected combinations ------------------------------------------------------------------

# A value that switches each selection option on.
ON = {
    "fps": 4.0,
    "evenly_sample_total_frames": True,
    "i_frames": True,
    "scene_threshold": 0.3,
    "early_bias": True,
    "total_frames": 16,
    "frame_indices": [0, 5, 10],
    "megadetector_lite_config": {},
}

# Every pair of spec section 2, "Rejected combinations".
REJECTED_PAIRS = [
    ("fps", "evenly_sample_total_frames"),
    ("fps", "i_frames"),
    ("fps", "scene_threshold"),
    ("i_frames", "scene_threshold"),
    ("early_bias", "i_frames"),
    ("early_bias", "scene_threshold"),
    ("early_bias", "total_frames"),
    ("early_bias", "evenly_sample_total_frames"),
    ("early_bias", "fps"),
    ("frame_indices", "total_frames"),
    ("frame_indices", "scene_threshold"),
    ("frame_indices", "i_frames"),
    ("frame_indices", "early_bias"),
    ("frame_indices", "evenly_sample_total_frames"),
    ("megadetector_lite_config", "early_bias"),
    ("megadetector_lite_config", "evenly_sample_total_frames"),
]


@pytest.mark.parametrize("first, second", REJECTED_PAIRS, ids=[f"{a}+{b}" for a, b in REJECTED_PAIRS])
def test_rejected_combination_names_both_fields(first, second):
    fields = {first: ON[first], second: ON[second]}
    # evenly_sample_total_frames needs total_frames on its own; give it where total_frames does
    # not itself clash, so that the pair under test is what gets rejected.
    if "evenly_sample_total_frames" in fields and not {"early_bias", "frame_indices"} & set(fields):
        fields["total_frames"] = 16
    with pytest.raises(ValidationError) as excinfo:
        VideoLoaderConfig(**fields)
    message = messages(excinfo)
    assert names(message, first), message
    assert names(message, second), message


@pytest.mark.parametrize("first, second", REJECTED_PAIRS, ids=[f"{a}+{b}" for a, b in REJECTED_PAIRS])
def test_rejected_combination_is_also_rejected_in_the_other_order(first, second):
    fields = {second: ON[second], first: ON[first]}
    if "evenly_sample_total_frames" in fields and not {"early_bias", "frame_indices"} & set(fields):
        fields["total_frames"] = 16
    with pytest.raises(ValidationError):
        VideoLoaderConfig(**fields)


@pytest.mark.parametrize(
    "given, missing",
    [
        ({"frame_selection_height": 480}, "frame_selection_width"),
        ({"frame_selection_width": 640}, "frame_selection_height"),
        ({"model_input_height": 240}, "model_input_width"),
        ({"model_input_width": 426}, "model_input_height"),
    ],
)
def test_only_one_of_height_and_width_is_rejected_naming_both(given, missing):
    with pytest.raises(ValidationError) as excinfo:
        VideoLoaderConfig(**given)
    message = messages(excinfo)
    assert names(message, next(iter(given))), message
    assert names(message, missing), message


def test_both_height_and_width_are_accepted():
    config = VideoLoaderConfig(
        frame_selection_height=480, frame_selection_width=640,
        model_input_height=240, model_input_width=426,
    )
    assert (config.frame_selection_height, config.frame_selection_width) == (480, 640)
    assert (config.model_input_height, config.model_input_width) == (240, 426)


def test_evenly_sample_total_frames_without_total_frames_is_rejected():
    with pytest.raises(ValidationError) as excinfo:
        VideoLoaderConfig(evenly_sample_total_frames=True)
    message = messages(excinfo)
    assert names(message, "evenly_sample_total_frames"), message
    assert names(message, "total_frames"), message


def test_evenly_sample_total_frames_with_total_frames_is_accepted():
    config = VideoLoaderConfig(evenly_sample_total_frames=True, total_frames=16)
    assert config.evenly_sample_total_frames is True
    assert config.total_frames == 16


@pytest.mark.parametrize(
    "fields",
    [
        {"fps": 4.0, "frame_indices": [0, 1, 2]},
        {"fps": 4.0, "total_frames": 16},
        {"i_frames": True, "total_frames": 16},
        {"scene_threshold": 0.3, "total_frames": 16},
        {"fps": 4.0, "megadetector_lite_config": {}},
        {"early_bias": True},
        {"frame_indices": [3, 1, 2], "megadetector_lite_config": {}},
        {"crop_bottom_pixels": 50, "fps": 4.0, "total_frames": 16, "pix_fmt": "bgr24"},
    ],
    ids=lambda fields: "+".join(fields),
)
def test_allowed_combinations_are_accepted(fields):
    config = VideoLoaderConfig(**fields)
    for field, value in fields.items():
        if field == "frame_indices":
            assert list(config.frame_indices) == value
        elif field != "megadetector_lite_config":
            assert getattr(config, field) == value


# --- MegadetectorLite auto-fill ---------------------------------------------------------------

def test_megadetector_n_frames_is_filled_from_total_frames():
    config = VideoLoaderConfig(total_frames=16, megadetector_lite_config={})
    assert config.megadetector_lite_config.n_frames == 16
    assert config.total_frames == 16


def test_total_frames_is_filled_from_megadetector_n_frames():
    config = VideoLoaderConfig(megadetector_lite_config={"n_frames": 8})
    assert config.total_frames == 8
    assert config.megadetector_lite_config.n_frames == 8


def test_explicit_total_frames_and_n_frames_are_not_overwritten():
    config = VideoLoaderConfig(total_frames=16, megadetector_lite_config={"n_frames": 8})
    assert config.total_frames == 16
    assert config.megadetector_lite_config.n_frames == 8


def test_neither_frame_count_given_leaves_both_unset():
    config = VideoLoaderConfig(megadetector_lite_config={})
    assert config.total_frames is None
    assert config.megadetector_lite_config.n_frames is None


def test_frame_counts_are_not_filled_without_megadetector():
    assert VideoLoaderConfig(total_frames=16).megadetector_lite_config is None


def test_auto_fill_does_not_mutate_the_callers_detector_config():
    detector = MegadetectorLiteConfig()
    config = VideoLoaderConfig(total_frames=16, megadetector_lite_config=detector)
    assert config.megadetector_lite_config.n_frames == 16
    assert detector.n_frames is None


# --- MegadetectorLiteConfig -------------------------------------------------------------------

SPEC_DETECTOR_DEFAULTS = {
    "confidence": 0.25,
    "nms_threshold": 0.45,
    "image_width": 640,
    "image_height": 640,
    "device": None,  # None: chosen (CUDA when present, else CPU) when the detector is loaded
    "frame_batch_size": 24,
    "n_frames": None,
    "fill_mode": "score_sorted",
    "sort_by_time": True,
    "seed": 55,
}


def test_megadetector_defaults_match_the_spec():
    assert MegadetectorLiteConfig().model_dump() == SPEC_DETECTOR_DEFAULTS


def test_empty_megadetector_mapping_in_a_video_config_gives_the_defaults():
    detector = VideoLoaderConfig(megadetector_lite_config={}).megadetector_lite_config
    assert detector == MegadetectorLiteConfig()


@pytest.mark.parametrize("mode", ["repeat", "score_sorted", "weighted_euclidean", "weighted_prob"])
def test_every_fill_mode_is_accepted(mode):
    detector = MegadetectorLiteConfig(fill_mode=mode)
    assert detector.fill_mode == mode
    assert FillMode(detector.fill_mode).value == mode


def test_fill_mode_enum_lists_exactly_the_spec_modes():
    assert {mode.value for mode in FillMode} == {
        "repeat", "score_sorted", "weighted_euclidean", "weighted_prob"
    }


@pytest.mark.parametrize("mode", ["sorted", "Repeat", "random", ""])
def test_bad_fill_mode_is_rejected(mode):
    with pytest.raises(ValidationError) as excinfo:
        MegadetectorLiteConfig(fill_mode=mode)
    assert excinfo.value.errors()[0]["loc"] == ("fill_mode",)


@pytest.mark.parametrize("device, expected", [
    ("cpu", "cpu"), ("cuda", "cuda"), ("cuda:0", "cuda:0"), ("cuda:3", "cuda:3"), ("mps", "mps"),
    ("auto", None), (None, None),
])
def test_valid_devices(device, expected):
    assert MegadetectorLiteConfig(device=device).device == expected


@pytest.mark.parametrize("device", ["gpu", "tpu", "cuda:x", "cuda:", "CPU:0:1", ""])
def test_bad_device_is_rejected(device):
    with pytest.raises(ValidationError) as excinfo:
        MegadetectorLiteConfig(device=device)
    assert excinfo.value.errors()[0]["loc"] == ("device",)
    assert "device" in messages(excinfo)


def test_bad_nested_device_is_reported_at_its_nested_location():
    with pytest.raises(ValidationError) as excinfo:
        VideoLoaderConfig(megadetector_lite_config={"device": "gpu"})
    assert excinfo.value.errors()[0]["loc"] == ("megadetector_lite_config", "device")


# --- misspelled keys --------------------------------------------------------------------------

@pytest.mark.parametrize("wrong, right", [
    ("fsp", "fps"),
    ("crop_bottom_pixel", "crop_bottom_pixels"),
    ("total_frame", "total_frames"),
    ("megadetector_lite_confg", "megadetector_lite_config"),
])
def test_misspelled_video_key_suggests_the_nearest_field(wrong, right):
    with pytest.raises(ValidationError) as excinfo:
        VideoLoaderConfig(**{wrong: 4})
    message = messages(excinfo)
    assert f"'{wrong}'" in message
    assert f"did you mean '{right}'" in message


def test_misspelled_nested_megadetector_key_suggests_the_nearest_field():
    with pytest.raises(ValidationError) as excinfo:
        VideoLoaderConfig.model_validate({"megadetector_lite_config": {"confidnce": 0.3}})
    error = excinfo.value.errors()[0]
    assert error["loc"] == ("megadetector_lite_config",)
    assert "'confidnce'" in error["msg"]
    assert "did you mean 'confidence'" in error["msg"]


def test_unknown_key_with_nothing_close_lists_the_valid_fields_without_a_guess():
    with pytest.raises(ValidationError) as excinfo:
        VideoLoaderConfig(zzzzzz=1)
    message = messages(excinfo)
    assert "'zzzzzz'" in message
    assert "did you mean" not in message
    assert "crop_bottom_pixels" in message and "cleanup_cache" in message


def test_every_misspelled_key_is_reported():
    with pytest.raises(ValidationError) as excinfo:
        VideoLoaderConfig(fsp=4, crop_bottom_pixel=50)
    message = messages(excinfo)
    assert "did you mean 'fps'" in message
    assert "did you mean 'crop_bottom_pixels'" in message


# --- immutability -----------------------------------------------------------------------------

def test_assigning_a_field_raises():
    config = VideoLoaderConfig(fps=4.0)
    with pytest.raises(ValidationError):
        config.fps = 8.0
    assert config.fps == 4.0


def test_assigning_a_nested_detector_field_raises():
    config = VideoLoaderConfig(megadetector_lite_config={"n_frames": 16})
    with pytest.raises(ValidationError):
        config.megadetector_lite_config.n_frames = 4
    assert config.megadetector_lite_config.n_frames == 16


def test_model_copy_with_update_gives_a_new_config_and_leaves_the_original():
    original = VideoLoaderConfig(fps=4.0, total_frames=16)
    changed = original.model_copy(update={"fps": 8.0})
    assert changed.fps == 8.0
    assert changed.total_frames == 16
    assert original.fps == 4.0
    assert changed is not original
    assert changed != original


def test_frame_indices_cannot_be_changed_in_place():
    # A mutable list here would let a "frozen" config change behind its owner's back (and its
    # cache key with it).
    config = VideoLoaderConfig(frame_indices=[0, 1, 2])
    key_before = config.cache_key_fields()
    try:
        config.frame_indices.append(99)
    except (AttributeError, TypeError):
        pass
    assert list(config.frame_indices) == [0, 1, 2]
    assert config.cache_key_fields() == key_before


def test_changing_the_callers_list_after_validation_does_not_change_the_config():
    indices = [0, 1, 2]
    config = VideoLoaderConfig(frame_indices=indices)
    indices.append(99)
    assert list(config.frame_indices) == [0, 1, 2]


# --- single-field checks ----------------------------------------------------------------------

@pytest.mark.parametrize("pix_fmt", ["rgb24", "bgr24"])
def test_supported_pix_fmt_is_accepted(pix_fmt):
    assert VideoLoaderConfig(pix_fmt=pix_fmt).pix_fmt == pix_fmt


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "gray", "RGB24", "rgb48le", ""])
def test_other_pix_fmt_is_rejected(pix_fmt):
    with pytest.raises(ValidationError) as excinfo:
        VideoLoaderConfig(pix_fmt=pix_fmt)
    assert excinfo.value.errors()[0]["loc"] == ("pix_fmt",)
    assert "rgb24" in messages(excinfo) and "bgr24" in messages(excinfo)


@pytest.mark.parametrize("indices", [[-1], [0, 5, -3]])
def test_negative_frame_indices_are_rejected(indices):
    with pytest.raises(ValidationError) as excinfo:
        VideoLoaderConfig(frame_indices=indices)
    assert excinfo.value.errors()[0]["loc"] == ("frame_indices",)
    assert "frame_indices" in messages(excinfo)


def test_non_negative_frame_indices_are_accepted_in_the_given_order():
    assert list(VideoLoaderConfig(frame_indices=[0, 7, 3]).frame_indices) == [0, 7, 3]


# --- YAML null means the default for zamba's Optional-with-default fields ---------------------

@pytest.mark.parametrize(
    "field", ["i_frames", "ensure_total_frames", "early_bias", "evenly_sample_total_frames", "pix_fmt"]
)
def test_null_in_yaml_means_the_default(field):
    data = yaml.safe_load(f"{field}: null\n")
    assert data == {field: None}
    config = VideoLoaderConfig.model_validate(data)
    assert getattr(config, field) == SPEC_VIDEO_DEFAULTS[field]
    assert config == VideoLoaderConfig()


def test_null_ensure_total_frames_means_true_not_false():
    config = VideoLoaderConfig.model_validate(yaml.safe_load("ensure_total_frames: null\n"))
    assert config.ensure_total_frames is True


def test_null_fill_mode_in_yaml_means_score_sorted():
    data = yaml.safe_load("megadetector_lite_config:\n  fill_mode: null\n")
    config = VideoLoaderConfig.model_validate(data)
    assert config.megadetector_lite_config.fill_mode == "score_sorted"


def test_null_still_means_none_for_fields_whose_default_is_none():
    config = VideoLoaderConfig.model_validate(yaml.safe_load("fps: null\ntotal_frames: null\n"))
    assert config.fps is None and config.total_frames is None


# --- cache directory --------------------------------------------------------------------------

def test_cache_dir_from_the_config_wins_over_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDEO_CACHE_DIR", str(tmp_path / "from_env"))
    config = VideoLoaderConfig(cache_dir=tmp_path / "from_config")
    assert resolve_cache_dir(config) == tmp_path / "from_config"


def test_cache_dir_falls_back_to_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDEO_CACHE_DIR", str(tmp_path / "from_env"))
    assert resolve_cache_dir(VideoLoaderConfig()) == tmp_path / "from_env"


@pytest.mark.parametrize("value", ["", "0"])
def test_empty_or_zero_environment_value_turns_the_cache_off(monkeypatch, value):
    monkeypatch.setenv("VIDEO_CACHE_DIR", value)
    assert resolve_cache_dir(VideoLoaderConfig()) is None


def test_no_cache_dir_anywhere_means_no_cache(monkeypatch):
    monkeypatch.delenv("VIDEO_CACHE_DIR", raising=False)
    assert resolve_cache_dir(VideoLoaderConfig()) is None


def test_resolved_cache_dir_is_a_path(monkeypatch, tmp_path):
    monkeypatch.delenv("VIDEO_CACHE_DIR", raising=False)
    resolved = resolve_cache_dir(VideoLoaderConfig(cache_dir=str(tmp_path / "c")))
    assert isinstance(resolved, Path) and resolved == tmp_path / "c"
    monkeypatch.setenv("VIDEO_CACHE_DIR", str(tmp_path / "from_env"))  # the config's comes first
    assert resolve_cache_dir(VideoLoaderConfig(cache_dir=str(tmp_path / "c"))) == tmp_path / "c"
    assert resolve_cache_dir(VideoLoaderConfig()) == tmp_path / "from_env"
    monkeypatch.setenv("VIDEO_CACHE_DIR", "0")  # "0" (or "") turns it off
    assert resolve_cache_dir(VideoLoaderConfig()) is None


def test_validation_does_not_read_the_environment_into_the_config(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDEO_CACHE_DIR", str(tmp_path / "from_env"))
    assert VideoLoaderConfig().cache_dir is None


def test_validating_never_creates_the_cache_dir(monkeypatch, tmp_path):
    from_config = tmp_path / "config_cache" / "nested"
    from_env = tmp_path / "env_cache"
    monkeypatch.setenv("VIDEO_CACHE_DIR", str(from_env))
    VideoLoaderConfig(cache_dir=from_config)
    VideoLoaderConfig.model_validate({"cache_dir": str(from_config), "fps": 4})
    VideoLoaderConfig()
    assert not from_config.exists()
    assert not from_config.parent.exists()
    assert not from_env.exists()


def test_resolving_the_cache_dir_does_not_create_it(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDEO_CACHE_DIR", str(tmp_path / "env_cache"))
    resolve_cache_dir(VideoLoaderConfig())
    resolve_cache_dir(VideoLoaderConfig(cache_dir=tmp_path / "config_cache"))
    assert list(tmp_path.iterdir()) == []


# --- cache key --------------------------------------------------------------------------------

def test_cache_key_fields_exclude_cache_dir_and_cleanup_cache(tmp_path):
    config = VideoLoaderConfig(fps=4.0, cache_dir=tmp_path, cleanup_cache=True)
    key = config.cache_key_fields()
    assert set(key) == set(SPEC_VIDEO_DEFAULTS) - {"cache_dir", "cleanup_cache"}
    assert key["fps"] == 4.0


def test_cache_key_fields_are_json_serialisable():
    config = VideoLoaderConfig(
        fps=4.0, total_frames=16, megadetector_lite_config={"fill_mode": "weighted_prob"}
    )
    key = json.loads(json.dumps(config.cache_key_fields()))
    assert key["megadetector_lite_config"]["fill_mode"] == "weighted_prob"
    assert key["megadetector_lite_config"]["n_frames"] == 16


def test_cache_key_ignores_cache_location_but_not_frame_options(tmp_path):
    base = VideoLoaderConfig(fps=4.0).cache_key_fields()
    assert VideoLoaderConfig(fps=4.0, cache_dir=tmp_path, cleanup_cache=True).cache_key_fields() == base
    assert VideoLoaderConfig(fps=2.0).cache_key_fields() != base
    assert VideoLoaderConfig(fps=4.0, pix_fmt="bgr24").cache_key_fields() != base
    assert VideoLoaderConfig(fps=4.0, crop_bottom_pixels=50).cache_key_fields() != base


def test_the_default_fill_mode_is_a_plain_string_wherever_it_goes():
    """A default is not validated by pydantic's use_enum_values: the enum member must still read
    as its value in str(), a dumped YAML and a message (issue 13's WeightRegion bug)."""
    detector = MegadetectorLiteConfig()
    assert type(detector.fill_mode) is str and str(detector.fill_mode) == "score_sorted"
    assert "fill_mode: score_sorted" in dump_config(detector)
