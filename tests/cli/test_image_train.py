"""``kifaru image train`` through main(argv): as a new user with only its required arguments (the
official lila.science model and MegadetectorLite fetched on first use), and with zamba's YAML."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from PIL import Image

from kifaru.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from tests.images.photos import save_labelled_photos, write_image_checkpoint, write_labels
from tests.media import animal_picture


def test_image_train_with_only_its_required_arguments_as_a_new_user(new_user, tmp_path, capsys):
    """`kifaru image train --data-dir DIR --labels CSV` on a fresh machine: lila.science (a tiny
    random-weight network with its 178 classes, served on the bucket mirror) fine-tuned on the
    crops MegadetectorLite (the real one) finds; the learning rate found by Lightning's finder;
    the photo with no animal in it reported, not trained on."""
    from kifaru.models.registry import LILA_SCIENCE, MEGADETECTOR_LITE
    from tests.images.photos import drawn_photo

    new_user.serve_megadetector_lite()
    species = [f"class_{i:03d}" for i in range(LILA_SCIENCE.num_classes)]
    official = write_image_checkpoint(tmp_path / "lila.ckpt", species=species, image_size=LILA_SCIENCE.image_size)
    new_user.serve_official_checkpoint("lila.science", official.read_bytes())
    photos = new_user.work / "photos"
    photos.mkdir()
    rows = []
    for i in range(12):  # the cat, shifted and flipped: the detector finds it in each
        name = f"cat_{i:02d}.jpg"
        picture = animal_picture(shift=i % 4)
        Image.fromarray(picture[:, ::-1] if i % 2 else picture).save(photos / name, quality=95)
        rows.append((name, "serval" if i < 6 else "caracal"))
    drawn_photo(3).save(photos / "nothing.jpg")
    rows.append(("nothing.jpg", "serval"))
    labels = write_labels(new_user.work / "labels.csv", rows)

    code = main(["image", "train", "--data-dir", str(photos), "--labels", str(labels)])
    captured = capsys.readouterr()
    assert code == EXIT_FAILED, captured.err  # nothing.jpg was not trained on
    for entry in (MEGADETECTOR_LITE, LILA_SCIENCE):
        assert f"{entry.name}: not in the model cache yet: downloading {entry.weights_filename}" in captured.err
    assert "on 12 photos" in captured.out and "1 not trained on" in captured.out
    assert "1 photo not trained on, with the reasons in" in captured.err
    checkpoint = new_user.work / "lila.science.ckpt"
    assert f"wrote {checkpoint}" in captured.out
    configuration = yaml.safe_load((new_user.work / "train_configuration.yaml").read_text())
    assert configuration["species"] == ["caracal", "serval"]  # a new head: not the model's classes
    assert configuration["starting_learning_rate"] > 0
    assert configuration["train_config"]["checkpoint"] is None and configuration["train_config"]["model_name"] == "lila.science"
    assert "val_macro_f1" in json.loads((new_user.work / "val_metrics.json").read_text())
    assert "nothing.jpg" in (new_user.work / "failures.csv").read_text()

    # The trained model predicts as a new user would run it.
    assert main(["image", "predict", "--data-dir", str(photos), "--checkpoint", str(checkpoint), "--save-dir", "predicted", "-q"]) == EXIT_OK
    assert "13 photos: 13 predicted, 0 failed" in capsys.readouterr().out


def test_zamba_s_yaml_and_the_command_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = save_labelled_photos(tmp_path / "photos", per_class=4, classes=("cat", "lion"))
    write_labels(tmp_path / "labels.csv", rows)
    checkpoint = write_image_checkpoint(tmp_path / "tiny.ckpt", image_size=48)
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"train_config": {
        "data_dir": "photos", "labels": "labels.csv", "checkpoint": str(checkpoint), "crop_images": False, "lr": 0.001,
        "max_epochs": 5, "num_workers": 0, "save_dir": "from_yaml",
    }}))  # fmt: skip
    assert main(["image", "train", "--config", str(config), "--max-epochs", "1", "--save-dir", "out"]) == EXIT_OK
    assert "trained 1 epoch on 8 photos" in capsys.readouterr().out
    assert (tmp_path / "out" / "lila.science.ckpt").is_file() and not (tmp_path / "from_yaml").exists()

    config.write_text(yaml.safe_dump({"train_config": {"data_dir": "photos", "labels": "labels.csv", "early_stoping_patience": 2}}))
    assert main(["image", "train", "--config", str(config)]) == EXIT_USAGE
    assert "unknown field 'early_stoping_patience' (did you mean 'early_stopping_patience'?)" in capsys.readouterr().err
    assert main(["image", "train", "--labels", "labels.csv"]) == EXIT_USAGE
    assert "give --data-dir" in capsys.readouterr().err


def test_megadetector_labels_from_the_command_line(tmp_path, capsys, monkeypatch):
    """--labels results.json --labels-format megadetector: each classified detection a crop of its class."""
    monkeypatch.chdir(tmp_path)
    rows = save_labelled_photos(tmp_path / "photos", per_class=4, classes=("cat", "lion"))
    checkpoint = write_image_checkpoint(tmp_path / "tiny.ckpt", image_size=48)
    results = {
        "info": {"format_version": "1.4"}, "detection_categories": {"1": "animal"}, "classification_categories": {"0": "cat", "1": "lion"},
        "images": [
            {"file": name, "detections": [{"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.6, 0.7], "classifications": [[str(int(label == "lion")), 0.9]]}]}
            for name, label in rows
        ] + [{"file": "unclassified.jpg", "detections": [{"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.5, 0.5]}]}],
    }  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps(results))
    argv = ["image", "train", "--data-dir", "photos", "--labels", "results.json", "--checkpoint", str(checkpoint), "--max-epochs", "1", "--lr", "0.001"]
    assert main([*argv, "--num-workers", "0"]) == EXIT_USAGE  # COCO, the default, is not what this file holds
    assert "is labels_format right?" in capsys.readouterr().err
    assert main([*argv, "--num-workers", "0", "--labels-format", "megadetector"]) == EXIT_OK
    captured = capsys.readouterr()
    assert "1 detection(s) without classifications left out" in captured.err
    assert "trained 1 epoch on 8 photos" in captured.out
