import numpy as np
import pytest
import torch

from kifaru.config import TrainConfig
from kifaru.train.augment import augmentation_names, clip_augmenter, parse_augmentation


def clip(frames=4, height=32, width=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", augmentation_names())
def test_every_augmentation_gives_uint8_frames_of_the_same_shape_and_changes_them(name):
    torch.manual_seed(0)
    frames = clip()
    out = clip_augmenter([parse_augmentation({"name": name, "p": 1.0})])(frames)
    assert out.dtype == np.uint8 and out.shape == frames.shape
    assert not np.array_equal(out, frames)


def test_a_flip_applies_to_every_frame_of_the_clip():
    frames = clip()
    out = clip_augmenter([parse_augmentation({"name": "horizontal_flip", "p": 1.0})])(frames)
    assert np.array_equal(out, frames[:, :, ::-1])


def test_a_cutout_covers_the_same_place_in_every_frame():
    torch.manual_seed(1)
    frames = clip() | 1  # no black pixel before the cutout
    out = clip_augmenter([parse_augmentation({"name": "cutout", "p": 1.0})])(frames)
    black = (out == 0).all(axis=-1)
    assert black[0].any() and (black == black[0]).all()


def test_probability_zero_leaves_the_clip_alone_and_no_augmentation_is_the_identity():
    frames = clip()
    for name in augmentation_names():
        assert np.array_equal(clip_augmenter([parse_augmentation({"name": name, "p": 0.0})])(frames), frames), name
    assert clip_augmenter([])(frames) is frames


def test_unknown_names_and_fields_are_named_with_a_suggestion():
    with pytest.raises(ValueError, match="unknown augmentation 'colour_jitter'.*did you mean 'color_jitter'"):
        TrainConfig(labels="l.csv", augmentations=[{"name": "colour_jitter"}])
    with pytest.raises(ValueError, match="did you mean 'degrees'"):
        TrainConfig(labels="l.csv", augmentations=[{"name": "affine", "degree": 5}])
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        parse_augmentation({"name": "gaussian_blur", "kernel_size": 4})


def test_augmentations_round_trip_through_yaml():
    from kifaru.config import dump_config, validate_config
    import yaml

    config = validate_config({"train_config": {"labels": "l.csv", "augmentations": ["horizontal_flip", {"name": "affine", "degrees": 5}]}})
    again = validate_config(yaml.safe_load(dump_config(config)))
    assert again.train_config.augmentations == config.train_config.augmentations
    assert again.train_config.augmentations[1].degrees == 5
