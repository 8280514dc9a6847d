"""train_images: a labelled set of photos in, a checkpoint kifaru image predict (and zamba) loads
out, with zamba's outputs and kifaru's; crops from the detector, photos that cannot be used
reported, a new or kept head, metrics per crop, image and sequence, resume and interruption."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kifaru.config.image import ImagePredictConfig, ImageTrainConfig
from kifaru.exceptions import ConfigError, TrainingInterrupted, UnsupportedOptionError
from kifaru.models.checkpoint_info import read_checkpoint_info
from kifaru.runs.image_predict import predict_images, resolve_image_run
from kifaru.train.image_data import StoredCrop
from kifaru.train.image_runner import train_images
from tests.images.boxes import BrightnessDetector
from tests.images.photos import SPECIES, save_labelled_photos, write_image_checkpoint, write_labels


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_image_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt", image_size=64)


@pytest.fixture
def labelled(tmp_path) -> tuple[Path, Path]:
    data = tmp_path / "photos"
    rows = save_labelled_photos(data, per_class=6, classes=("cat", "lion", "blank"))
    return data, write_labels(tmp_path / "labels.csv", rows)


def _config(data: Path, labels: Path, checkpoint: Path, out: Path, **fields) -> ImageTrainConfig:
    defaults = {"crop_images": False, "max_epochs": 2, "lr": 1e-3, "num_workers": 0, "batch_size": 4}
    return ImageTrainConfig(data_dir=data, labels=labels, checkpoint=checkpoint, save_dir=out, **{**defaults, **fields})


def test_a_new_head_for_new_species_and_zamba_s_outputs(labelled, checkpoint, tmp_path):
    data, labels = labelled
    out = tmp_path / "out"
    seen = []
    real_load = StoredCrop.load

    def load(self):  # the data loader reads each crop from the run's crop folder in cache_dir
        seen.append(Path(self.path).parent)
        return real_load(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StoredCrop, "load", load)
        report = train_images(_config(data, labels, checkpoint, out, cache_dir=tmp_path / "crops"))
    assert seen and {folder.parent for folder in seen} == {tmp_path / "crops"}
    assert list((tmp_path / "crops").iterdir()) == []  # removed when the run ends
    assert report.species == ["blank", "cat", "lion"]  # "lion" is not the model's: a new head
    assert report.epochs == 2 and report.crops == 18 and not report.failures
    assert report.checkpoint == out / "lila.science.ckpt"  # zamba's name: model_name + .ckpt
    info = read_checkpoint_info(report.checkpoint)
    assert info.model_class == "ImageClassifierModule" and list(info.species) == report.species
    assert {k: info.hyper_parameters[k] for k in ("model_name", "image_size", "model_family")} == {
        "model_name": "test_convnext", "image_size": 64, "model_family": "lila.science",
    }  # fmt: skip
    configuration = yaml.safe_load((out / "train_configuration.yaml").read_text())
    assert configuration["species"] == report.species and configuration["starting_learning_rate"] == 1e-3
    for name in ("val_metrics.json", "test_metrics.json"):
        metrics = json.loads((out / name).read_text())
        subset = name.split("_")[0]
        for key in (f"{subset}_loss", f"{subset}_macro_f1", f"{subset}_image_macro_f1", f"species/{subset}_f1/lion"):
            assert 0 <= metrics[key] < 10, key
        assert f"{subset}_sequence_macro_f1" not in metrics  # no sequences here
    splits = (out / "splits.csv").read_text().splitlines()
    assert splits[0] == "filepath,split,seq_id,labels" and len(splits) == 19
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert list((out / "logs").glob("events.out.tfevents.*"))  # TensorBoard

    # The trained checkpoint predicts with kifaru image predict.
    predict = ImagePredictConfig(data_dir=data, checkpoint=report.checkpoint, crop_images=False, save_dir=tmp_path / "predicted", num_workers=0)
    predicted = predict_images(predict, run=resolve_image_run(predict))
    assert len(predicted.predicted) == 18 and predicted.run.species == report.species

    with pytest.raises(ConfigError, match=r"already holds lila.science.ckpt.*--overwrite"):
        train_images(_config(data, labels, checkpoint, out))


def test_labels_among_the_model_s_species_keep_its_head(labelled, checkpoint, tmp_path):
    data, _ = labelled
    rows = [(f"{label}_{i:02d}.jpg", label) for label in ("cat", "blank") for i in range(6)]
    labels = write_labels(tmp_path / "subset.csv", rows)
    kept = train_images(_config(data, labels, checkpoint, tmp_path / "kept", max_epochs=1))
    assert kept.species == SPECIES  # the model's own four
    new = train_images(_config(data, labels, checkpoint, tmp_path / "new", max_epochs=1, use_default_model_labels=False))
    assert new.species == ["blank", "cat"]


def test_crops_from_the_detector_and_photos_it_finds_nothing_in(tmp_path, checkpoint):
    from PIL import Image

    data = tmp_path / "photos"
    rows = save_labelled_photos(data, per_class=5, classes=("cat", "lion"))
    Image.new("RGB", (200, 150), (5, 5, 5)).save(data / "dark.jpg")
    (data / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    labels = write_labels(tmp_path / "labels.csv", [*rows, ("dark.jpg", "cat"), ("broken.jpg", "lion"), ("gone.jpg", "lion")])
    config = _config(data, labels, checkpoint, tmp_path / "out", crop_images=True)
    with pytest.warns(UserWarning, match="3 labelled photo.s. are not trained on"):
        report = train_images(config, detector=BrightnessDetector())
    reasons = {Path(r.item).name: r.reason for r in report.failures}
    assert set(reasons) == {"dark.jpg", "broken.jpg", "gone.jpg"}
    assert "found no animal at detections_threshold 0.2" in reasons["dark.jpg"] and reasons["gone.jpg"] == "no such file"
    assert report.crops == 10  # one animal box each (the weak 0.1 box is under the threshold)
    failures = (tmp_path / "out" / "failures.csv").read_text()
    assert "dark.jpg" in failures and "broken.jpg" in failures
    assert "dark.jpg" not in (tmp_path / "out" / "splits.csv").read_text()


def test_labels_by_sequence_give_sequence_metrics(tmp_path, checkpoint):
    data = tmp_path / "photos"
    rows = save_labelled_photos(data, per_class=9, classes=("cat", "blank"))
    files = [(name, f"seq_{label}_{int(name[-6:-4]) // 3}") for name, label in rows]  # bursts of three
    sequence_files = write_labels(tmp_path / "metadata.csv", files, header=("filepath", "seq_id"))
    by_seq = sorted({(seq, seq.split("_")[1]) for _, seq in files})
    labels = write_labels(tmp_path / "train_labels.csv", [(seq, int(label == "cat"), int(label == "blank")) for seq, label in by_seq], header=("seq_id", "cat", "blank"))
    report = train_images(_config(data, labels, checkpoint, tmp_path / "out", sequence_files=sequence_files, max_epochs=1, use_default_model_labels=False))
    assert report.species == ["cat", "blank"]  # the one-hot columns' order
    for seq in {s for s in report.photos.seq_ids}:
        assert len({split for s, split in zip(report.photos.seq_ids, report.photos.splits) if s == seq}) == 1
    assert 0 <= report.val_metrics["val_sequence_macro_f1"] <= 1
    assert "val_sequence_top_1_accuracy" not in report.val_metrics  # two classes: plain accuracy
    assert 0 <= report.val_metrics["val_sequence_accuracy"] <= 1


def test_a_stopped_run_resumes_from_its_last_checkpoint(labelled, checkpoint, tmp_path, monkeypatch):
    from kifaru.train.image_module import ImageClassificationModule

    data, labels = labelled
    out = tmp_path / "out"
    real = ImageClassificationModule.on_train_epoch_end

    def stop_in_the_second_epoch(self):
        real(self)
        if self.current_epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(ImageClassificationModule, "on_train_epoch_end", stop_in_the_second_epoch, raising=False)
    with pytest.raises(TrainingInterrupted) as stopped:
        train_images(_config(data, labels, checkpoint, out, max_epochs=4))
    monkeypatch.undo()
    last = stopped.value.last_checkpoint
    assert last == out / "checkpoints" / "last.ckpt" and stopped.value.epochs >= 1
    assert not (out / "lila.science.ckpt").exists()
    resumed = train_images(_config(data, labels, checkpoint, out, max_epochs=4, resume_from=last))
    assert resumed.epochs == 4 and resumed.checkpoint.is_file()


def test_a_new_timm_network_from_scratch(labelled, tmp_path):
    data, labels = labelled
    config = ImageTrainConfig(
        data_dir=data, labels=labels, from_scratch=True, architecture="test_convnext", pretrained=False, image_size=48,
        crop_images=False, max_epochs=1, lr=1e-3, num_workers=0, save_dir=tmp_path / "out", model_name=None,
    )  # fmt: skip
    report = train_images(config)
    assert report.checkpoint.name == "test_convnext.ckpt"
    info = read_checkpoint_info(report.checkpoint)
    assert info.hyper_parameters["model_name"] == "test_convnext" and info.hyper_parameters["scheduler"] == "CosineAnnealingLR"


def test_without_a_learning_rate_the_finder_chooses_one(labelled, checkpoint, tmp_path):
    data, labels = labelled
    report = train_images(_config(data, labels, checkpoint, tmp_path / "out", lr=None, max_epochs=1))
    assert report.lr > 0 and report.lr != 1e-5  # 1e-5: the checkpoint's own, where the finder starts
    assert yaml.safe_load((tmp_path / "out" / "train_configuration.yaml").read_text())["starting_learning_rate"] == pytest.approx(report.lr)


def test_what_kifaru_does_not_do_is_refused(labelled, checkpoint, tmp_path):
    data, labels = labelled
    with pytest.raises(UnsupportedOptionError, match="batch_size null .*give a number"):
        train_images(_config(data, labels, checkpoint, tmp_path / "out", batch_size=None))
    with pytest.raises(UnsupportedOptionError, match="devices 2: kifaru image train runs on one device"):
        train_images(_config(data, labels, checkpoint, tmp_path / "out", devices=2))


def test_balanced_class_weights():
    import numpy as np

    from kifaru.train.image_module import balanced_class_weights

    targets = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0]])
    assert balanced_class_weights(targets).tolist() == pytest.approx([4 / (2 * 3), 4 / (2 * 1), 1.0])


@pytest.mark.parametrize("weight_decay, expected", [("zamba", 1 / (1e-3 * 25)), (0.01, 0.01), (0.0, 0.0)])
def test_adamw_s_weight_decay_is_zamba_s_rule_or_the_one_given(weight_decay, expected):
    import torch

    from kifaru.train.image_module import ImageClassificationModule

    module = ImageClassificationModule(torch.nn.Linear(3, 2), ["a", "b"], {"lr": 1e-3}, num_training_batches=25, weight_decay=weight_decay)
    optimizer = module.configure_optimizers()
    assert type(optimizer).__name__ == "AdamW" and optimizer.param_groups[0]["weight_decay"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("optimizer", "params", "weight_decay", "expected"),
    [("SGD", {"momentum": 0.9}, 0.01, {"momentum": 0.9, "weight_decay": 0.01}), ("SGD", {"weight_decay": 0.2}, "zamba", {"weight_decay": 0.2}), ("Rprop", {}, 0.01, {})],
)  # fmt: skip
def test_another_optimizer_takes_the_weight_decay_where_it_has_one(optimizer, params, weight_decay, expected):
    import torch

    from kifaru.train.image_module import ImageClassificationModule

    module = ImageClassificationModule(
        torch.nn.Linear(3, 2), ["a", "b"], {"lr": 1e-3}, num_training_batches=25, weight_decay=weight_decay, optimizer=optimizer, optimizer_params=params
    )  # fmt: skip
    built = module.configure_optimizers()
    assert type(built).__name__ == optimizer
    assert {key: built.param_groups[0][key] for key in expected} == expected
    if optimizer == "Rprop":
        assert "weight_decay" not in built.param_groups[0]  # Rprop has none: nothing is passed (no warning)


def test_optimizer_and_named_augmentations_in_a_run(labelled, checkpoint, tmp_path, monkeypatch):
    """optimizer, optimizer_params and augmentations (kifaru's, by name) reach the run; an unknown
    optimizer is named before any photo is read; weight decay given twice is refused."""
    from kifaru.train import image_data

    data, labels = labelled
    augmented = []
    real_init = image_data._ThenNamed.__init__

    def init(self, pipeline, named):
        real_init(self, pipeline, named)
        augmented.append(named.augmentations)

    monkeypatch.setattr(image_data._ThenNamed, "__init__", init)
    report = train_images(
        _config(data, labels, checkpoint, tmp_path / "out", max_epochs=1, optimizer="SGD", optimizer_params={"momentum": 0.5},
                augmentations=[{"name": "grayscale", "p": 1.0}])
    )  # fmt: skip
    assert [[a.name for a in named] for named in augmented] == [["grayscale"]]  # the train set only
    assert report.epochs == 1
    with pytest.raises(ConfigError, match="unknown optimizer 'Adamw'.*; valid: .*AdamW"):
        train_images(_config(tmp_path / "no-such-folder", labels, checkpoint, tmp_path / "out2", optimizer="Adamw"))
    with pytest.raises(ValueError, match="weight_decay is given twice"):
        _config(data, labels, checkpoint, tmp_path / "out2", weight_decay=0.1, optimizer_params={"weight_decay": 0.2})
    with pytest.raises(ValueError, match="unknown augmentation 'greyscale'"):
        _config(data, labels, checkpoint, tmp_path / "out2", augmentations=[{"name": "greyscale"}])


def test_named_augmentations_apply_to_a_photo_after_zamba_s():
    import pickle

    import torch

    from kifaru.train.augment import parse_augmentation
    from kifaru.train.image_data import photo_augmenter

    augment = pickle.loads(pickle.dumps(photo_augmenter(32, extra=False, named=[parse_augmentation({"name": "grayscale", "p": 1.0})])))
    photo = torch.zeros((3, 32, 32), dtype=torch.uint8)
    photo[0], photo[1], photo[2] = 200, 100, 50  # a colour no gray equals
    out = augment(photo)
    assert out.shape == (3, 32, 32) and out.dtype == torch.uint8
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2]) and int(out.max()) > 0


def test_checkpoints_and_early_stopping_may_watch_the_macro_f1(labelled, checkpoint, tmp_path, monkeypatch):
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    from kifaru.train import lightning_steps

    data, labels = labelled
    built = []
    real = lightning_steps.build_trainer

    def build_trainer(*args, **kwargs):
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(lightning_steps, "build_trainer", build_trainer)
    train_images(_config(data, labels, checkpoint, tmp_path / "out", max_epochs=1, checkpointing={"monitor": "val_macro_f1"}))
    trainer, best = built[0]
    stopping = [c for c in trainer.callbacks if isinstance(c, EarlyStopping)]
    assert best.monitor == "val_macro_f1" and best.mode == "max" and isinstance(best, ModelCheckpoint)
    assert [(c.monitor, c.mode) for c in stopping] == [("val_macro_f1", "max")]
    with pytest.raises(ValueError, match="checkpointing.monitor must be val_loss or val_macro_f1"):
        _config(data, labels, checkpoint, tmp_path / "o", checkpointing={"monitor": "val_top_1_accuracy"})


def test_boxes_in_the_labels_are_cropped_each_with_its_own_class(tmp_path, checkpoint, monkeypatch):
    """zamba's labels with x1, y1, x2, y2: no detector runs; a photo with a cat box and a lion box
    gives two crops, each trained on as its own row's class."""
    import numpy as np

    from kifaru.train import image_data

    data = tmp_path / "photos"
    rows = save_labelled_photos(data, per_class=6, classes=("cat", "lion"))
    boxed = [(name, label, 10, 10, 200, 150) for name, label in rows]  # pixels
    boxed += [(rows[0][0], "lion", 0.5, 0.5, 0.95, 0.95)]  # relative: a second box on the first cat photo
    labels = write_labels(tmp_path / "labels.csv", boxed, header=("filepath", "label", "x1", "y1", "x2", "y2"))
    made = []
    real_init = image_data.CropDataset.__init__

    def init(self, pixels, targets, *args, **kwargs):
        real_init(self, pixels, targets, *args, **kwargs)
        made.append(self)
        shapes.add(self.pixels[0].load().shape)  # while the run's crop folder exists

    shapes = set()

    monkeypatch.setattr(image_data.CropDataset, "__init__", init)
    report = train_images(_config(data, labels, checkpoint, tmp_path / "out", crop_images=True, max_epochs=1, use_default_model_labels=False))
    assert report.crops == 13 and not report.failures
    first = str(data / rows[0][0])
    targets = {}
    for dataset in made[:3]:  # train, val, test
        for crop, target in zip(dataset.pixels, dataset.targets):
            targets.setdefault(Path(crop.path).name, {})[crop.index] = target.tolist()
    photo = f"{report.photos.filepaths.index(first):07d}.npy"
    assert targets[photo] == {0: [1.0, 0.0], 1: [0.0, 1.0]}  # cat box, then the lion box
    assert shapes == {(64, 64, 3)} and np.isfinite(report.val_metrics["val_loss"])


def test_coco_labels_train_on_their_boxes_and_whole_photos(tmp_path, checkpoint):
    """A COCO labels file (zamba's labels_format: coco): each box a crop of its class, an
    annotation without a box its whole photo, COCO Camera Traps' location as split_by."""
    data = tmp_path / "photos"
    rows = save_labelled_photos(data, per_class=6, classes=("cat", "lion"))
    names = sorted({name for name, _ in rows})
    coco = {
        "images": [{"id": i, "file_name": name, "location": f"site_{i % 4}"} for i, name in enumerate(names)],
        "categories": [{"id": 1, "name": "Cat"}, {"id": 2, "name": "Lion"}],
        "annotations": [
            {"id": i, "image_id": names.index(name), "category_id": 1 if label == "cat" else 2, **({"bbox": [10, 10, 190, 140]} if i % 3 else {})}
            for i, (name, label) in enumerate(rows)
        ],
    }  # fmt: skip
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(coco))
    with pytest.warns(UserWarning, match=r"4 annotation\(s\) without a bbox label their whole photo"):
        report = train_images(_config(data, labels, checkpoint, tmp_path / "out", crop_images=True, max_epochs=1, split_by="location"))
    assert report.crops == 12 and not report.failures and report.species == ["cat", "lion"]
    by_split: dict[str, set] = {}
    for filepath, split in zip(report.photos.filepaths, report.photos.splits):
        by_split.setdefault(split, set()).add(f"site_{names.index(Path(filepath).name) % 4}")
    assert sum(len(sites) for sites in by_split.values()) == 4  # no site in two splits
