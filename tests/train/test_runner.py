"""train_model end to end on made-up clips with a tiny timm backbone (seconds per run)."""

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from kifaru.config import TrainConfig, VideoLoaderConfig
from kifaru.exceptions import ConfigError, NoUsableInputError
from kifaru.models.checkpoint import read_checkpoint, write_checkpoint
from kifaru.models.time_distributed import TimeDistributedEfficientNet
from kifaru.notices import listening
from kifaru.train.labels import LabelsWarning
from kifaru.train.runner import train_model
from kifaru.train.synthetic import write_training_set
from tests.models.official_files import OFFICIAL_ROUTES, assert_first_use_notices, provide_official_checkpoint, tiny_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

FRAMES = 4


@pytest.fixture(scope="module")
def clip_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    labels = write_training_set(folder, clips_per_class=5, n_frames=FRAMES)
    return folder, labels


def loader(tmp_path):
    return VideoLoaderConfig(
        fps=4, total_frames=FRAMES, ensure_total_frames=True, model_input_height=48, model_input_width=64,
        cache_dir=tmp_path / "frames",
    )  # fmt: skip


def config(tmp_path, labels, data_dir, **fields):
    values = dict(
        labels=labels, data_dir=data_dir, from_scratch=True, backbone="test_efficientnet", backbone_pretrained=False,
        max_epochs=1, batch_size=4, num_workers=0, save_dir=tmp_path / "out", seed=1,
        backbone_finetune_config={"unfreeze_backbone_at_epoch": 0}, loggers=["tensorboard", "csv"],
    )  # fmt: skip
    values.update(fields)
    return TrainConfig(**values)


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def trained(clip_set, tmp_path_factory):
    """One run, labels with a missing file and a broken one among the good clips."""
    folder, labels = clip_set
    tmp_path = tmp_path_factory.mktemp("run")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00not a video" * 50)
    with_bad = tmp_path / "labels.csv"
    with_bad.write_text(labels.read_text() + f"missing.mp4,red_square\n{broken},blue_disc\n")
    with pytest.warns(LabelsWarning, match="2 labelled clip"):
        report = train_model(config(tmp_path, with_bad, folder, max_epochs=2, predict_dir=folder), loader(tmp_path))
    return report, tmp_path


def test_a_run_writes_zambas_outputs_in_a_fresh_version_folder(trained):
    report, tmp_path = trained
    version = tmp_path / "out" / "version_0"
    assert report.version_dir == version
    for name in ("time_distributed.ckpt", "hparams.yaml", "train_configuration.yaml", "val_metrics.json",
                 "test_metrics.json", "splits.csv", "failures.csv", "metrics.csv", "checkpoints/last.ckpt"):  # fmt: skip
        assert (version / name).is_file(), name
    assert list(version.glob("events.out.tfevents.*"))
    configuration = yaml.safe_load((version / "train_configuration.yaml").read_text())
    assert configuration["species"] == ["blue_disc", "green_bar", "red_square"]
    assert configuration["model_class"] == "TimeDistributedEfficientNet"
    assert "labels" not in configuration["train_config"]
    test_metrics = json.loads((version / "test_metrics.json").read_text())
    assert "test_loss" in test_metrics and "val_loss" not in test_metrics  # the holdout under its own name
    assert {"test_macro_f1", "test_top_1_accuracy", "species/test_f1/red_square"} <= set(test_metrics)
    assert "val_macro_f1" in json.loads((version / "val_metrics.json").read_text())
    # The splits it made are also where zamba writes them, in save_dir itself.
    assert (tmp_path / "out" / "splits.csv").read_text() == (version / "splits.csv").read_text()


def test_unreadable_and_missing_clips_are_reported_and_never_trained_on(trained):
    report, tmp_path = trained
    failures = rows(report.version_dir / "failures.csv")
    assert sorted(Path(f["filepath"]).name for f in failures) == ["broken.mp4", "missing.mp4"]
    assert {f["stage"] for f in failures} == {"file", "decode"}
    split_rows = rows(report.version_dir / "splits.csv")
    assert len(split_rows) == 15 and not any("broken" in r["filepath"] or "missing" in r["filepath"] for r in split_rows)
    assert {r["split"] for r in split_rows} == {"train", "val", "holdout"}


def test_the_checkpoint_holds_the_best_weights_in_zambas_format(trained):
    report, _ = trained
    checkpoint = read_checkpoint(report.checkpoint)
    raw = torch.load(report.checkpoint, weights_only=True)
    assert set(raw) == {"state_dict", "hyper_parameters", "global_step", "pytorch-lightning_version"}
    hparams = checkpoint.hyper_parameters
    assert hparams["species"] == report.species and hparams["num_frames"] == FRAMES
    assert {"lr", "scheduler", "scheduler_params", "model_class", "video_loader_config", "backbone_name"} <= set(hparams)
    assert any(k.startswith("base.module.") for k in checkpoint.state_dict)
    best = [p for p in (report.version_dir / "checkpoints").glob("best-*.ckpt")]
    lightning = torch.load(best[0], weights_only=False)["state_dict"]
    for key, value in checkpoint.state_dict.items():
        assert torch.equal(value, lightning[f"model.{key}"]), key


def test_the_trained_model_predicts_with_kifaru_predict(trained, tmp_path):
    from kifaru.config import PredictConfig
    from kifaru.runs.predict import predict_model

    report, _ = trained
    files = report.clips.subset("holdout")[0]
    listing = tmp_path / "files.csv"
    listing.write_text("filepath\n" + "\n".join(files) + "\n")
    result = predict_model(PredictConfig(filepaths=listing, checkpoint=report.checkpoint, save=False, num_workers=0))
    assert [r.filepath for r in result.predicted] == files
    assert result.run.species == report.species


def test_the_predict_dir_is_predicted_with_the_trained_model_when_training_ends(trained, clip_set):
    report, _ = trained
    folder, _ = clip_set
    clips = sorted(str(p) for p in folder.glob("*.mp4"))
    assert sorted(r.filepath for r in report.predictions.predicted) == clips and not report.predictions.failed
    assert report.predictions.run.species == report.species
    assert report.predictions.run.predict_config.checkpoint == report.checkpoint
    csv_path = report.version_dir / "predictions" / "zamba_predictions.csv"
    assert csv_path in report.predictions.outputs.values()
    assert len(rows(csv_path)) == len(clips)


def test_a_missing_predict_dir_is_an_error_before_training(clip_set, tmp_path):
    folder, labels = clip_set
    with pytest.raises(ConfigError, match=r"predict_dir .*nowhere: no such folder"):
        train_model(config(tmp_path, labels, folder, predict_dir=tmp_path / "nowhere"), loader(tmp_path))
    assert not (tmp_path / "out").exists()


def test_a_second_run_gets_the_next_version_and_overwrite_writes_into_save_dir(clip_set, tmp_path):
    folder, labels = clip_set
    (tmp_path / "out" / "version_4").mkdir(parents=True)
    report = train_model(config(tmp_path, labels, folder), loader(tmp_path))
    assert report.version_dir == tmp_path / "out" / "version_5"
    report = train_model(config(tmp_path, labels, folder, overwrite=True, save_dir=tmp_path / "mine"), loader(tmp_path))
    assert report.version_dir == tmp_path / "mine" and (tmp_path / "mine" / "time_distributed.ckpt").is_file()


def test_a_dry_run_trains_one_batch_and_writes_only_the_splits(clip_set, tmp_path):
    folder, labels = clip_set
    report = train_model(config(tmp_path, labels, folder, dry_run=True), loader(tmp_path))
    assert report.checkpoint is None
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["splits.csv"]  # as zamba's dry run


def _source_checkpoint(tmp_path, species):
    torch.manual_seed(3)
    network = TimeDistributedEfficientNet(len(species), num_frames=FRAMES, backbone_name="test_efficientnet")
    path = tmp_path / "source.ckpt"
    write_checkpoint(path, network, "TimeDistributedEfficientNet", species,
                     {"num_frames": FRAMES, "backbone_name": "test_efficientnet", "lr": 0.002, "scheduler": None, "scheduler_params": None})  # fmt: skip
    return path, network.state_dict()


@pytest.mark.parametrize("model_species, kept", [
    (["blue_disc", "elephant", "green_bar", "red_square"], True),  # the labels are a subset: head kept
    (["elephant", "gorilla"], False),  # new species: a new head on the checkpoint's backbone
])  # fmt: skip
def test_fine_tuning_a_checkpoint_keeps_or_replaces_its_head(clip_set, tmp_path, model_species, kept):
    folder, labels = clip_set
    source, original = _source_checkpoint(tmp_path, model_species)
    run = config(tmp_path, labels, folder, from_scratch=False, backbone=None, checkpoint=source, model_name="european",
                 backbone_finetune_config={"unfreeze_backbone_at_epoch": 5})  # fmt: skip
    report = train_model(run, loader(tmp_path))
    assert report.checkpoint.name == "time_distributed.ckpt"  # as zamba: named by the checkpoint's model class
    trained = read_checkpoint(report.checkpoint)
    assert trained.species == (model_species if kept else ["blue_disc", "green_bar", "red_square"])
    assert trained.hyper_parameters["lr"] == 0.002  # the checkpoint's learning rate
    # The backbone was frozen all along: the checkpoint's, unchanged (kept or new head alike).
    base = [k for k in original if k.startswith("base.module.")]
    assert all(torch.equal(trained.state_dict[k], original[k]) for k in base)
    head = trained.state_dict["classifier.5.weight"]
    assert head.shape[0] == len(trained.species)
    if kept:
        assert not torch.equal(head, original["classifier.5.weight"])  # trained from the checkpoint's


def test_labels_that_no_clip_can_back_are_an_error(tmp_path):
    """An input that cannot be used (exit 1), not a bad command line (a ConfigError, exit 2)."""
    labels = tmp_path / "labels.csv"
    labels.write_text("filepath,label\nnope.mp4,dog\nnada.mp4,cat\n")
    with pytest.raises(NoUsableInputError, match="none of its 2 clips could be read"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            train_model(config(tmp_path, labels, tmp_path), loader(tmp_path))


def test_training_learns_the_made_up_classes(clip_set, tmp_path):
    """Not a benchmark: a sanity check that the loss goes down over a few epochs."""
    folder, labels = clip_set
    report = train_model(config(tmp_path, labels, folder, max_epochs=4, lr=0.01, early_stopping_config=None), loader(tmp_path))
    losses = [float(r["train_loss_epoch"]) for r in rows(report.version_dir / "metrics.csv") if r.get("train_loss_epoch")]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert np.isfinite(losses).all()


def test_train_configuration_records_the_values_used(trained):
    report, tmp_path = trained
    recorded = yaml.safe_load((report.version_dir / "train_configuration.yaml").read_text())["train_config"]
    assert recorded["gpus"] == 0
    assert recorded["scheduler_config"] == {"scheduler": None, "scheduler_params": None}
    assert recorded["use_default_model_labels"] is False  # new species: a new head
    assert recorded["save_dir"] == str(tmp_path / "out")
    assert recorded["model_cache_dir"]


def test_resuming_continues_at_the_next_epoch_with_the_optimizer_state(clip_set, tmp_path):
    folder, labels = clip_set
    first = train_model(config(tmp_path, labels, folder, max_epochs=2, early_stopping_config=None), loader(tmp_path))
    last = first.version_dir / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=False)
    assert saved["epoch"] == 1
    steps_per_epoch = saved["global_step"] // 2
    resumed = train_model(
        config(tmp_path, labels, folder, max_epochs=3, early_stopping_config=None, resume_from=last), loader(tmp_path)
    )
    assert resumed.version_dir != first.version_dir and resumed.epochs == 3
    epochs_logged = {int(r["epoch"]) for r in rows(resumed.version_dir / "metrics.csv") if r.get("train_loss_epoch")}
    assert epochs_logged == {2}  # only the epoch that was left
    after = torch.load(resumed.version_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert after["global_step"] == 3 * steps_per_epoch
    # Adam's per-parameter step count went on from the saved one instead of starting again.
    adam_steps = {int(s["step"]) for s in after["optimizer_states"][0]["state"].values()}
    assert max(adam_steps) == 3 * steps_per_epoch


def test_a_new_backbone_without_pretrained_weights_trains_whole_from_the_first_epoch(clip_set, tmp_path):
    """Frozen random features would teach the head nothing: the zamba freezing schedule applies
    only to pretrained or checkpoint backbones."""
    folder, labels = clip_set
    report = train_model(config(tmp_path, labels, folder, backbone_finetune_config={"unfreeze_backbone_at_epoch": 5}), loader(tmp_path))
    last = torch.load(report.version_dir / "checkpoints" / "last.ckpt", weights_only=False)
    optimised = sum(len(group["params"]) for group in last["optimizer_states"][0]["param_groups"])
    network = TimeDistributedEfficientNet(len(report.species), num_frames=FRAMES, backbone_name="test_efficientnet")
    assert optimised == len(list(network.parameters()))  # every parameter, not only the head's


def test_labels_given_as_a_data_frame_or_records_split_as_the_csv_does(clip_set, tmp_path):
    """zamba's TrainConfig takes a DataFrame; kifaru keeps its rows as records."""
    pandas = pytest.importorskip("pandas")
    folder, labels = clip_set
    frame = pandas.read_csv(labels)
    for name, given in (("csv", labels), ("frame", frame), ("records", frame.to_dict("records"))):
        train_model(config(tmp_path, given, folder, dry_run=True, save_dir=tmp_path / name), loader(tmp_path))
    assert TrainConfig(labels=frame).labels == frame.to_dict("records")
    expected = (tmp_path / "csv" / "splits.csv").read_text()
    assert (tmp_path / "frame" / "splits.csv").read_text() == expected
    assert (tmp_path / "records" / "splits.csv").read_text() == expected


@pytest.mark.parametrize("route", OFFICIAL_ROUTES)
def test_the_official_model_to_fine_tune_is_found_with_the_default_region(new_user, tmp_path, route):
    """A TrainConfig with only labels: the default model's checkpoint with the default region,
    from the cache, the environment variable or the mirror."""
    from kifaru.models.registry import TIME_DISTRIBUTED
    from kifaru.train.model_setup import model_source

    data = tiny_checkpoint(tmp_path / "stand-in.ckpt", TIME_DISTRIBUTED)
    expected = provide_official_checkpoint(new_user, TIME_DISTRIBUTED, data, route)
    notices = []
    config = TrainConfig(labels=[{"filepath": "a.mp4", "label": "antelope_duiker"}])
    assert config.weight_download_region == "us" and type(config.weight_download_region) is str
    with listening(notices.append):
        model = model_source(config)
    assert_first_use_notices(notices, TIME_DISTRIBUTED, route, len(data))
    assert model.checkpoint_path == expected and expected.read_bytes() == data
    assert (model.model_class, model.species) == (TIME_DISTRIBUTED.model_class, list(TIME_DISTRIBUTED.species))
    notices.clear()
    with listening(notices.append):  # again: in the cache now, nothing to say
        model_source(config)
    assert notices == []
