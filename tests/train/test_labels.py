import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from kifaru.exceptions import ConfigError
from kifaru.models.official import video_model_entry
from kifaru.train.labels import (
    LabelsWarning,
    choose_species,
    labelled_clips,
    one_output_if_binary,
    read_labels,
    site_splits,
    split_clips,
    splits_csv,
)

CASES = json.loads((Path(__file__).parents[1] / "fixtures" / "zamba_train" / "labels_cases.json").read_text())
MODEL_SPECIES = list(video_model_entry("time_distributed").species)


def prepare(rows, data_dir=None, use_default_model_labels=None, split_proportions=None):
    labels = read_labels(rows, data_dir)
    species, kept_head = choose_species(labels, MODEL_SPECIES, use_default_model_labels)
    clips = split_clips(labelled_clips(labels, species), split_proportions, labels.has_split)
    return one_output_if_binary(clips), kept_head


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_species_targets_and_splits_are_zambas(case):
    """Labels tables turned into training sets by zamba 2.7.2's TrainConfig
    (benchmarks/zamba_labels_reference.py): same species order, targets and splits."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelsWarning)
        clips, kept_head = prepare(case["rows"], **case["options"])
    assert kept_head == case["use_default_model_labels"]
    assert clips.species == case["species"]
    assert [Path(f).name for f in clips.filepaths] == [c["filepath"] for c in case["clips"]]
    assert clips.targets.tolist() == [c["targets"] for c in case["clips"]]
    assert clips.splits == [c["split"] for c in case["clips"]]


def test_site_splits_never_share_a_site():
    sites = [f"site_{i % 7}" for i in range(70)] + [None] * 5
    splits = site_splits(sites, {"train": 3, "val": 1, "holdout": 1})
    by_site = {}
    for site, split in zip(sites, splits):
        if site is not None:
            by_site.setdefault(site, set()).add(split)
    assert all(len(s) == 1 for s in by_site.values())
    assert {s for group in by_site.values() for s in group} == {"train", "val", "holdout"}
    assert all(s in {"train", "val", "holdout"} for s in splits[-5:])


def test_labels_are_lowercased_before_matching_the_models_species(tmp_path):
    """zamba compares before lowercasing, so 'Elephant' would get a new head there."""
    rows = [{"filepath": f"{i}.mp4", "label": label} for i, label in enumerate(["Elephant", "GORILLA"] * 3)]
    clips, kept_head = prepare(rows)
    assert kept_head and clips.species == MODEL_SPECIES


def test_a_species_with_fewer_clips_than_splits_is_named():
    rows = [{"filepath": f"{i}.mp4", "label": "dog"} for i in range(5)] + [{"filepath": "x.mp4", "label": "cat"}]
    with pytest.raises(ConfigError, match="cat: 1"):
        prepare(rows)


def test_rows_without_label_are_dropped_with_a_warning_and_all_empty_is_an_error():
    rows = [{"filepath": "a.mp4", "label": "dog"}, {"filepath": "b.mp4", "label": ""}]
    with pytest.warns(LabelsWarning, match="1 row"):
        labels = read_labels(rows)
    assert [r.filepath for r in labels.rows] == ["a.mp4"]
    with pytest.raises(ConfigError, match="no row has a label"):
        read_labels([{"filepath": "a.mp4", "label": None}])


def test_a_split_column_must_be_complete_and_valid(tmp_path):
    partial = [{"filepath": "a.mp4", "label": "dog", "split": "train"}, {"filepath": "b.mp4", "label": "dog", "split": ""}]
    with pytest.raises(ConfigError, match="1 row.*no split"):
        read_labels(partial)
    invalid = [{"filepath": "a.mp4", "label": "dog", "split": "test"}]
    with pytest.raises(ConfigError, match="invalid split value.*test"):
        read_labels(invalid)
    empty = [{"filepath": f"{i}.mp4", "label": "dog", "split": None} for i in range(3)]
    with pytest.warns(LabelsWarning, match="split column is empty"):
        assert not read_labels(empty).has_split


def test_use_default_model_labels_conflicting_with_new_species_is_an_error():
    rows = [{"filepath": f"{i}.mp4", "label": "okapi"} for i in range(3)]
    with pytest.raises(ConfigError, match="okapi"):
        prepare(rows, use_default_model_labels=True)


def test_a_labels_csv_is_read_with_paths_joined_to_data_dir(tmp_path):
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("filepath,label,site\nx/a.mp4,Dog,s1\n/abs/b.mp4,cat,\n", encoding="utf-8")
    labels = read_labels(csv_file, tmp_path / "videos")
    assert [r.filepath for r in labels.rows] == [str(tmp_path / "videos" / "x" / "a.mp4"), "/abs/b.mp4"]
    assert [r.label for r in labels.rows] == ["dog", "cat"]
    assert [r.site for r in labels.rows] == ["s1", None]
    with pytest.raises(ConfigError, match="needs 'filepath' and 'label'.*missing: label"):
        (tmp_path / "bad.csv").write_text("filepath,species\na.mp4,dog\n")
        read_labels(tmp_path / "bad.csv")


def test_splits_csv_lists_every_clip_once():
    rows = [{"filepath": f"v,{i}.mp4", "label": "dog", "split": "train"} for i in range(2)]
    clips, _ = prepare(rows, use_default_model_labels=False)
    assert splits_csv(clips) == 'filepath,split\n"v,0.mp4",train\n"v,1.mp4",train\n'
    assert np.array_equal(clips.targets, [[1], [1]])
