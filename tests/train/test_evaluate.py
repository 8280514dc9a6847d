"""Multi-clip evaluation of the holdout (kifaru.train.evaluate): the metrics, how the clips of a
video are cut, the multiplied loader config, and a training run that reports them."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from kifaru.config import TrainConfig, VideoLoaderConfig
from kifaru.exceptions import ConfigError
from kifaru.train.data import cache_clips
from kifaru.train.evaluate import (
    CONSECUTIVE,
    INTERLEAVED,
    RANKED,
    RANKED_IN_TIME_ORDER,
    clip_layout,
    clip_positions,
    clip_probabilities,
    evaluate_holdout,
    multi_clip_loader_config,
    multi_clip_metrics,
)
from kifaru.train.metrics import classification_metrics
from kifaru.video.cache import config_hash

SPECIES = ["a", "b", "c"]


# -- the metrics ----------------------------------------------------------------------------


def disagreeing_clips():
    """Two videos of three clips: video 0 (a) has one clip that says b, video 1 (b) two that say a."""
    probabilities = np.array([
        [[0.9, 0.2, 0.1], [0.3, 0.8, 0.1], [0.7, 0.1, 0.2]],
        [[0.1, 0.9, 0.2], [0.6, 0.3, 0.1], [0.55, 0.2, 0.1]],
    ])  # fmt: skip
    targets = np.array([[1, 0, 0], [0, 1, 0]])
    return probabilities, targets


def test_clip_level_counts_every_clip_and_video_level_the_average():
    metrics = multi_clip_metrics(*disagreeing_clips(), SPECIES)
    # Clips: 3 of 6 have the true species first. Videos: the means (0.63, 0.37, 0.13) and
    # (0.42, 0.47, 0.13) both rank the true species first.
    assert metrics["test_clip_top_1_accuracy"] == pytest.approx(3 / 6)
    assert metrics["test_video_top_1_accuracy"] == pytest.approx(1.0)
    # Clips predicting a (> 0.5): 0.9, 0.7 (right), 0.6, 0.55 (wrong); 0.3 missed: F1 = 4/7.
    # b: 0.9 right, 0.8 wrong, two missed: F1 = 2/5. c: nobody, 0.
    assert metrics["species/test_clip_f1/a"] == pytest.approx(4 / 7)
    assert metrics["species/test_clip_f1/b"] == pytest.approx(2 / 5)
    assert metrics["test_clip_macro_f1"] == pytest.approx((4 / 7 + 2 / 5) / 3)
    # Videos: a's mean 0.63 right; b's mean 0.47 is not above 0.5: F1 a 1, b 0.
    assert metrics["species/test_video_f1/a"] == pytest.approx(1.0)
    assert metrics["species/test_video_f1/b"] == 0.0
    assert metrics["species/test_video_recall/b"] == 0.0
    assert metrics["test_video_macro_f1"] == pytest.approx(1 / 3)


def test_the_names_are_classification_metrics_with_a_clip_or_video_prefix():
    probabilities, targets = disagreeing_clips()
    metrics = multi_clip_metrics(probabilities, targets, SPECIES)
    assert set(metrics) == set(classification_metrics(targets, probabilities[:, 0], SPECIES, "test_clip")) | set(
        classification_metrics(targets, probabilities[:, 0], SPECIES, "test_video")
    )
    assert not any(name.startswith("test_macro") for name in metrics)  # the one-clip test_* metrics are not touched


def test_one_clip_per_video_scores_clips_and_videos_alike():
    probabilities, targets = disagreeing_clips()
    metrics = multi_clip_metrics(probabilities[:, :1], targets, SPECIES)
    for name, value in classification_metrics(targets, probabilities[:, 0], SPECIES, "test_video").items():
        assert metrics[name] == value
        assert metrics[name.replace("test_video", "test_clip")] == value


def test_probabilities_must_be_videos_by_clips_by_species():
    probabilities, targets = disagreeing_clips()
    with pytest.raises(ValueError, match="videos, clips, species"):
        multi_clip_metrics(probabilities[0], targets, SPECIES)


# -- the loader config ----------------------------------------------------------------------


def test_fps_selection_asks_for_n_times_the_frames_at_the_same_rate():
    loader = VideoLoaderConfig(fps=4, total_frames=16, model_input_height=48, model_input_width=64)
    multiplied = multi_clip_loader_config(loader, 3)
    assert (multiplied.total_frames, multiplied.fps, multiplied.model_input_height) == (48, 4, 48)
    assert config_hash(multiplied) != config_hash(loader)  # its own frame cache entries
    assert clip_layout(loader) == CONSECUTIVE
    assert multi_clip_loader_config(loader, 1) is loader


def test_evenly_sampled_frames_are_multiplied_and_interleaved():
    loader = VideoLoaderConfig(evenly_sample_total_frames=True, total_frames=8)
    multiplied = multi_clip_loader_config(loader, 2)
    assert multiplied.total_frames == 16 and multiplied.evenly_sample_total_frames
    assert clip_layout(loader) == INTERLEAVED


@pytest.mark.parametrize("n_frames", [None, 8])
def test_megadetector_frames_are_multiplied_and_selected_in_rank_order(n_frames):
    loader = VideoLoaderConfig(fps=4, total_frames=8, megadetector_lite_config={"n_frames": n_frames, "confidence": 0.3})
    multiplied = multi_clip_loader_config(loader, 2)
    detector = multiplied.megadetector_lite_config
    assert (multiplied.total_frames, detector.n_frames, detector.sort_by_time, detector.confidence) == (16, 16, False, 0.3)
    assert clip_layout(loader) == RANKED_IN_TIME_ORDER
    unsorted = VideoLoaderConfig(fps=4, total_frames=8, megadetector_lite_config={"sort_by_time": False})
    assert clip_layout(unsorted) == RANKED


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"frame_indices": [0, 5, 10]}, "frame_indices"),
        ({"early_bias": True}, "early_bias"),
        ({"fps": 4}, "total_frames"),
    ],
)
def test_frames_that_cannot_be_multiplied_are_a_config_error(fields, message):
    with pytest.raises(ConfigError, match=rf"holdout_clips_per_video 2: .*{message}"):
        multi_clip_loader_config(VideoLoaderConfig(**fields), 2)


# -- cutting a video's frames into clips ----------------------------------------------------


def test_clip_positions_of_each_layout():
    assert clip_positions(2, 3, CONSECUTIVE).tolist() == [[0, 1, 2], [3, 4, 5]]
    assert clip_positions(2, 3, RANKED).tolist() == [[0, 1, 2], [3, 4, 5]]
    assert clip_positions(2, 3, INTERLEAVED).tolist() == [[0, 2, 4], [1, 3, 5]]
    # Frames in rank order (frame numbers 7, 2, 9 the best three): each clip back in time order.
    assert clip_positions(2, 3, RANKED_IN_TIME_ORDER, [7, 2, 9, 4, 1, 8]).tolist() == [[1, 0, 2], [4, 3, 5]]
    with pytest.raises(ValueError, match="frame number"):
        clip_positions(2, 3, RANKED_IN_TIME_ORDER)


def write_numbered_video(path: Path, n_frames: int, fps: int = 4) -> Path:
    """Grey frames whose level is 12 times their frame number (H.264 keeps it within a few)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width, stream.pix_fmt = 32, 32, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "10"}
        for number in range(n_frames):
            frame = np.full((32, 32, 3), 12 * number, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


class RecordingModule(torch.nn.Module):
    """Stands in for the LightningModule: records the clips it sees, says 'a' for bright clips."""

    species = SPECIES

    def __init__(self) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(1))
        self.batches: list[torch.Tensor] = []

    @property
    def device(self) -> torch.device:
        return self.bias.device

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        assert not self.training and not torch.is_grad_enabled()
        self.batches.append(frames.clone())
        level = frames.float().mean(dim=(1, 2, 3, 4)) / 255
        return torch.stack([level * 20 - 5, -level * 20 + 5, torch.full_like(level, -5)], dim=1)


def frame_numbers(clips: torch.Tensor) -> list[list[int]]:
    """The frame number each frame of (clips, T, H, W, 3) shows."""
    return torch.round(clips[:, :, 16, 16, 0].float() / 12).int().tolist()


@pytest.mark.parametrize(
    "fields, expected",
    [
        # 2 fps over 4 fps video: frames 0, 2, 4...; consecutive windows of 4.
        ({"fps": 2}, [[0, 2, 4, 6], [8, 10, 12, 14]]),
        # 8 frames spread over the 16: 0, 2, ..., 14; clip 0 is the 4 a training clip spreads (0, 4, 8, 12).
        ({"evenly_sample_total_frames": True}, [[0, 4, 8, 12], [2, 6, 10, 14]]),
    ],
)
def test_the_clips_of_a_video_in_each_mode(tmp_path, fields, expected):
    video = write_numbered_video(tmp_path / "numbered.mp4", 16)
    loader = VideoLoaderConfig(total_frames=4, cache_dir=tmp_path / "frames", **fields)
    cached = cache_clips([str(video)], multi_clip_loader_config(loader, 2), num_workers=0)
    module = RecordingModule()
    module.train()
    probabilities, kept = clip_probabilities(module, list(cached.entries.values()), 2, 4, clip_layout(loader), batch_size=8)
    assert kept == [0] and probabilities.shape == (1, 2, 3)
    assert frame_numbers(module.batches[0]) == expected
    assert module.training  # given back as it came


def test_a_short_video_repeats_its_last_frame_in_the_later_clips(tmp_path):
    video = write_numbered_video(tmp_path / "short.mp4", 6)
    loader = VideoLoaderConfig(fps=4, total_frames=4, cache_dir=tmp_path / "frames")
    cached = cache_clips([str(video)], multi_clip_loader_config(loader, 2), num_workers=0)
    module = RecordingModule()
    clip_probabilities(module, list(cached.entries.values()), 2, 4, CONSECUTIVE, batch_size=8)
    assert frame_numbers(module.batches[0]) == [[0, 1, 2, 3], [4, 5, 5, 5]]


def numbered_entry(path: Path, n_frames: int, first: int = 0) -> Path:
    frames = np.repeat((12 * np.arange(first, first + n_frames, dtype=np.uint8))[:, None, None, None], 32, axis=1)
    frames = np.ascontiguousarray(np.broadcast_to(frames, (n_frames, 32, 32, 3)))
    np.savez(path, frames=frames, source_indices=np.arange(first, first + n_frames))
    return path


def test_clips_are_run_in_batches_and_videos_without_every_frame_left_out(tmp_path):
    entries = [numbered_entry(tmp_path / "v0.npz", 4), numbered_entry(tmp_path / "short.npz", 3), numbered_entry(tmp_path / "v2.npz", 4, first=10)]
    module = RecordingModule()
    probabilities, kept = clip_probabilities(module, entries, 2, 2, CONSECUTIVE, batch_size=3)
    assert kept == [0, 2]
    assert [len(batch) for batch in module.batches] == [3, 1]
    assert frame_numbers(torch.cat(module.batches)) == [[0, 1], [2, 3], [10, 11], [12, 13]]
    # Video 2's clips are brighter: more 'a' than video 0's, each clip its own.
    assert probabilities.shape == (2, 2, 3)
    assert probabilities[1, 0, 0] > probabilities[0, 1, 0] > probabilities[0, 0, 0]


def test_files_that_cannot_be_read_are_left_out_with_a_warning(tmp_path):
    videos = [str(write_numbered_video(tmp_path / f"v{i}.mp4", 16)) for i in range(2)]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00not a video" * 50)
    files = [videos[0], str(broken), videos[1]]
    targets = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    loader = VideoLoaderConfig(fps=4, total_frames=4, cache_dir=tmp_path / "frames")
    module = RecordingModule()
    with pytest.warns(UserWarning, match=r"1 of 3 holdout clip\(s\) left out \(1 could not be read.*over the other 2"):
        metrics = evaluate_holdout(module, files, targets, loader, 2, batch_size=4, num_workers=0)
    assert sum(len(batch) for batch in module.batches) == 4  # two videos, two clips each
    # Scored on the two readable videos only (a and c): nobody is b, so b's F1 is 0 but not for a zero-frame clip.
    with torch.no_grad():
        probabilities = torch.sigmoid(RecordingModule().eval()(torch.cat(module.batches))).reshape(2, 2, 3).numpy()
    assert metrics == pytest.approx(multi_clip_metrics(probabilities, targets[[0, 2]], SPECIES))


# -- in training ----------------------------------------------------------------------------


def train_config(tmp_path, labels, folder, **fields):
    values = dict(
        labels=labels, data_dir=folder, from_scratch=True, backbone="test_efficientnet", backbone_pretrained=False,
        max_epochs=2, batch_size=4, num_workers=0, save_dir=tmp_path / "out", seed=1,
        backbone_finetune_config={"unfreeze_backbone_at_epoch": 0}, loggers=[],
    )  # fmt: skip
    values.update(fields)
    return TrainConfig(**values)


def tiny_loader(tmp_path, **fields):
    values = dict(fps=4, total_frames=4, model_input_height=48, model_input_width=64, cache_dir=tmp_path / "frames")
    values.update(fields)
    return VideoLoaderConfig(**values)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_training_reports_clip_and_video_metrics_of_the_best_weights(tmp_path):
    from kifaru.models.runner import VideoClassifier
    from kifaru.train.runner import train_model
    from kifaru.train.synthetic import write_training_set
    from kifaru.video.cache import FrameCache

    folder = tmp_path / "clips"
    labels = write_training_set(folder, clips_per_class=5, n_frames=16)
    loader = tiny_loader(tmp_path)
    # seed 1, 3 epochs: the best weights are epoch 0's, not the last ones.
    report = train_model(train_config(tmp_path, labels, folder, holdout_clips_per_video=2, max_epochs=3), loader)
    written = json.loads((report.version_dir / "test_metrics.json").read_text())
    assert written == report.test_metrics
    assert {"test_loss", "test_macro_f1", "test_top_1_accuracy"} <= set(written)
    multi = {name: value for name, value in written.items() if "test_clip_" in name or "test_video_" in name}
    assert {"test_clip_macro_f1", "test_video_macro_f1", "test_clip_top_1_accuracy", "test_video_top_1_accuracy",
            "species/test_video_f1/red_square", "species/test_clip_recall/blue_disc"} <= set(multi)  # fmt: skip
    assert all(0.0 <= value <= 1.0 for value in multi.values())

    # The same numbers from the exported best weights on the 2 x 4 frames of each holdout clip.
    files, targets = report.clips.subset("holdout")
    cache = FrameCache(loader.cache_dir, multi_clip_loader_config(loader, 2))
    clips = np.stack([np.load(cache.entry_path(Path(f)))["frames"].reshape(2, 4, 48, 64, 3) for f in files])
    classifier = VideoClassifier.from_file(report.checkpoint)
    probabilities = classifier.predict_proba(list(clips.reshape(-1, 4, 48, 64, 3))).reshape(len(files), 2, -1)
    expected = multi_clip_metrics(probabilities, targets, report.species)
    assert multi == pytest.approx(expected, abs=1e-5)


def test_frames_that_cannot_make_several_clips_are_an_error_before_training(tmp_path):
    from kifaru.train.runner import train_model

    labels = tmp_path / "labels.csv"
    labels.write_text("filepath,label\nnowhere.mp4,red_square\n")
    loader = VideoLoaderConfig(fps=4, frame_indices=[0, 4, 8, 12], cache_dir=tmp_path / "frames")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ConfigError, match="holdout_clips_per_video 2: video_loader_config.frame_indices"):
            train_model(train_config(tmp_path, labels, tmp_path, holdout_clips_per_video=2), loader)
    assert not (tmp_path / "frames").exists()  # nothing was read
