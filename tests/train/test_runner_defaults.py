"""train_model as it runs by default: DataLoader worker processes (started with "spawn"), early
stopping without max_epochs, and what a run that cannot start leaves behind."""

import csv
import json
import os
import pickle

import numpy as np
import pytest

from kifaru.config import TrainConfig
from kifaru.train.runner import train_model
from kifaru.train.synthetic import write_training_set
from tests.train.test_runner import FRAMES, loader
from tests.train.test_runner import config as runner_config

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")



@pytest.fixture(scope="module")
def clip_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return folder, write_training_set(folder, clips_per_class=4, n_frames=FRAMES)


def config(tmp_path, labels, data_dir, **fields):
    """test_runner's tiny run, in batches of 3 (several batches of the 16 clips), logged as CSV."""
    return runner_config(tmp_path, labels, data_dir, **{"batch_size": 3, "loggers": ["csv"], **fields})


def test_training_with_worker_processes_and_augmentations(clip_set, tmp_path, monkeypatch):
    """num_workers 2: the datasets and the augmenter are sent (pickled) to spawned workers."""
    import kifaru.train.lightning_steps as steps

    folder, labels = clip_set
    made = []
    original = steps.data_loader

    def recording(*args, **kwargs):
        made.append(original(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(steps, "data_loader", recording)
    augmentations = [{"name": "horizontal_flip", "p": 0.5}, {"name": "color_jitter"}, {"name": "cutout", "p": 0.5}]
    report = train_model(config(tmp_path, labels, folder, num_workers=2, augmentations=augmentations), loader(tmp_path))

    train_loader = made[0]
    assert train_loader.num_workers == 2 and train_loader.multiprocessing_context.get_start_method() == "spawn"
    assert train_loader.dataset.augment.augmentations == TrainConfig(labels=labels, augmentations=augmentations).augmentations
    version = tmp_path / "out" / "version_0"
    assert report.version_dir == version and report.checkpoint == version / "time_distributed.ckpt"
    for name in ("time_distributed.ckpt", "checkpoints/last.ckpt", "metrics.csv", "val_metrics.json", "test_metrics.json"):
        assert (version / name).is_file(), name
    assert np.isfinite(json.loads((version / "val_metrics.json").read_text())["val_loss"])
    assert np.isfinite(json.loads((version / "test_metrics.json").read_text())["test_loss"])


def test_without_max_epochs_early_stopping_ends_the_run_patience_epochs_after_the_best(clip_set, tmp_path):
    folder, labels = clip_set
    stopping = {"monitor": "val_macro_f1", "patience": 1}
    report = train_model(config(tmp_path, labels, folder, max_epochs=None, early_stopping_config=stopping), loader(tmp_path))
    with open(report.version_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    trained = sorted({int(row["epoch"]) for row in rows if row["train_loss_epoch"]})
    assert trained == list(range(len(trained)))
    # Each epoch's validation (the scoring of the best weights after training logs one epoch on).
    scores = [next(float(row["val_macro_f1"]) for row in rows if row["val_macro_f1"] and int(row["epoch"]) == epoch) for epoch in trained]
    assert len(scores) < 30  # it stopped
    best = scores.index(max(scores))  # the first best epoch: a tie is no improvement
    assert len(scores) == best + 1 + stopping["patience"]
    assert report.epochs == len(scores) and (report.version_dir / "time_distributed.ckpt").is_file()


def test_what_a_worker_receives_survives_pickling(clip_set, tmp_path):
    from kifaru.train.augment import clip_augmenter, parse_augmentation
    from kifaru.train.data import CachedClips
    from kifaru.train.lightning_steps import NumberedClips

    frames = np.random.default_rng(0).integers(0, 256, (FRAMES, 48, 64, 3), dtype=np.uint8)
    entry = tmp_path / "entry.npz"
    np.savez(entry, frames=frames)
    augmenter = clip_augmenter([parse_augmentation({"name": "horizontal_flip", "p": 1.0})])
    augmenter(frames)  # builds its torchvision pipeline: not part of what is pickled
    dataset = NumberedClips(CachedClips([entry], np.ones((1, 3)), augmenter))
    again = pickle.loads(pickle.dumps(dataset))
    clip, target, index = again[0]
    assert np.array_equal(clip.numpy(), frames[:, :, ::-1]) and target.tolist() == [1.0, 1.0, 1.0] and index == 0


def test_a_run_that_fails_to_start_leaves_no_version_folder_and_says_why(clip_set, tmp_path, monkeypatch):
    """A worker that cannot start (here: an augmenter that cannot be pickled, the bug of a lambda)
    is reported as itself, not as Lightning's failing clean-up ("Please call iter(combined_loader)
    first"), and the version folder it made, with nothing to use in it, is gone. An earlier
    run's folder stays."""
    import kifaru.train.augment as augment

    folder, labels = clip_set
    earlier = tmp_path / "out" / "version_0"
    earlier.mkdir(parents=True)
    (earlier / "time_distributed.ckpt").write_bytes(b"an earlier run's model")
    monkeypatch.setattr(augment, "clip_augmenter", lambda augmentations: lambda frames: frames)
    with pytest.raises(Exception, match="pickle") as raised:
        train_model(config(tmp_path, labels, folder, num_workers=1), loader(tmp_path))
    assert "iter(combined_loader)" not in str(raised.value)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["splits.csv", "version_0"]
    assert (earlier / "time_distributed.ckpt").read_bytes() == b"an earlier run's model"


def test_a_run_that_fails_after_its_first_checkpoint_keeps_its_folder(clip_set, tmp_path, monkeypatch):
    """Its checkpoints/last.ckpt continues it: the folder is kept."""
    import kifaru.train.lightning_steps as steps

    folder, labels = clip_set

    def failing(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(steps, "export_best", failing)
    with pytest.raises(OSError, match="disk full"):
        train_model(config(tmp_path, labels, folder), loader(tmp_path))
    assert (tmp_path / "out" / "version_0" / "checkpoints" / "last.ckpt").is_file()


def test_with_overwrite_a_failed_start_removes_nothing_from_save_dir(clip_set, tmp_path, monkeypatch):
    import kifaru.train.augment as augment

    folder, labels = clip_set
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    monkeypatch.setattr(augment, "clip_augmenter", lambda augmentations: lambda frames: frames)
    with pytest.raises(Exception, match="pickle"):
        train_model(config(tmp_path, labels, folder, num_workers=1, overwrite=True), loader(tmp_path))
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_an_interruption_with_overwrite_never_offers_an_earlier_runs_checkpoint(clip_set, tmp_path, monkeypatch):
    """save_dir holds an earlier run's checkpoints/last.ckpt: stopped before its own first
    checkpoint, the run has nothing to continue from, and removes nothing."""
    import kifaru.train.lightning_steps as steps
    from kifaru.exceptions import TrainingInterrupted

    folder, labels = clip_set
    earlier = tmp_path / "out" / "checkpoints" / "last.ckpt"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"an earlier run's")
    old = earlier.stat().st_mtime - 60
    os.utime(earlier, (old, old))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(steps, "build_trainer", interrupted)
    with pytest.raises(TrainingInterrupted) as raised:
        train_model(config(tmp_path, labels, folder, overwrite=True), loader(tmp_path))
    assert raised.value.last_checkpoint is None and raised.value.signal_name == "SIGINT"
    assert earlier.read_bytes() == b"an earlier run's"
