"""Image training labels: label rows, one-hot columns, labels by sequence linked to their photos,
splits that keep groups (a grouping column, else a sequence) apart, and clear refusals."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest

from kifaru.exceptions import ConfigError
from kifaru.train.image_labels import image_splits_csv, read_image_labels, split_photos


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_label_rows_one_per_species_of_a_photo(tmp_path):
    labels = _write(tmp_path / "labels.csv", "filepath,label\nb.jpg,Zebra\na.jpg,cat\nb.jpg,cat\nc.jpg,\n/abs/d.jpg,zebra\n")
    with pytest.warns(UserWarning, match="1 row.s. with no label left out"):
        photos = read_image_labels(labels, tmp_path / "data")
    assert photos.species == ["cat", "zebra"]  # lower-cased and sorted, as zamba
    assert photos.filepaths == ["/abs/d.jpg", str(tmp_path / "data" / "a.jpg"), str(tmp_path / "data" / "b.jpg")]
    assert photos.targets.tolist() == [[0, 1], [1, 0], [1, 1]]
    assert photos.splits == ["", "", ""] and photos.seq_ids == [None, None, None]


def test_one_hot_columns_keep_their_order_and_a_grouping_column_is_named(tmp_path):
    labels = _write(tmp_path / "labels.csv", "filepath,zebra,empty,season\na.jpg,1,0,S1\nb.jpg,0,1,S2\nc.jpg,1,1,S2\n")
    with pytest.raises(ConfigError, match=r"line 2: column 'season' holds 'S1', not 0 or 1.*name it in split_by"):
        read_image_labels(labels, tmp_path)
    photos = read_image_labels(labels, tmp_path, split_by="season")
    assert photos.species == ["zebra", "empty"]
    assert photos.targets.tolist() == [[1, 0], [0, 1], [1, 1]]
    assert photos.groups == ["S1", "S2", "S2"]
    assert read_image_labels(labels, tmp_path, split_by="season", species_in_label_order=["empty", "zebra"]).targets.tolist() == [[0, 1], [1, 0], [1, 1]]
    with pytest.raises(ConfigError, match="species_in_label_order leaves out classes .*: zebra"):
        read_image_labels(labels, tmp_path, split_by="season", species_in_label_order=["empty"])


def test_labels_by_sequence_go_to_every_photo_of_it(tmp_path):
    """The Hakuna Ma-data layout: train_labels.csv by seq_id, the photos in a metadata CSV."""
    labels = _write(tmp_path / "train_labels.csv", "seq_id,zebra,empty\nSER_1,1,0\nSER_2,0,1\nSER_9,1,0\n")
    files = _write(
        tmp_path / "metadata.csv",
        "seq_id,filepath,season\nSER_1,S1/a_1.jpg,S1\nSER_1,S1/a_2.jpg,S1\nSER_2,S2/b_1.jpg,S2\nSER_3,S2/c_1.jpg,S2\n",
    )
    with pytest.raises(ConfigError, match="labels by seq_id need sequence_files"):
        read_image_labels(labels, tmp_path)
    photos = read_image_labels(labels, tmp_path / "img", sequence_files=files, split_by="season")
    assert [Path(f).name for f in photos.filepaths] == ["a_1.jpg", "a_2.jpg", "b_1.jpg"]
    assert photos.targets.tolist() == [[1, 0], [1, 0], [0, 1]]
    assert photos.seq_ids == ["SER_1", "SER_1", "SER_2"] and photos.groups == ["S1", "S1", "S2"]
    assert any("1 photo(s) of sequence_files belong to sequences without labels" in n for n in photos.notes)
    assert any("1 labelled sequence(s) have no photo in sequence_files (e.g. SER_9)" in n for n in photos.notes)
    with pytest.raises(ConfigError, match="split_by site: no such column"):
        read_image_labels(labels, tmp_path, sequence_files=files, split_by="site")


def _many(tmp_path: Path, groups: int = 30, per_group: int = 3) -> Path:
    rows = ["filepath,label,seq_id,season"]
    for g in range(groups):
        for k in range(per_group):
            rows.append(f"p{g:02d}_{k}.jpg,{'zebra' if g % 2 else 'empty'},seq{g:02d},S{g % 6}")
    return _write(tmp_path / "labels.csv", "\n".join(rows) + "\n")


def test_splits_keep_a_sequence_together_and_a_grouping_column_apart(tmp_path):
    labels = _many(tmp_path)
    by_sequence = split_photos(read_image_labels(labels, tmp_path), {"train": 3, "val": 1, "test": 1})
    splits_of: dict[str, set[str]] = {}
    for seq_id, split in zip(by_sequence.seq_ids, by_sequence.splits):
        splits_of.setdefault(seq_id, set()).add(split)
    assert all(len(s) == 1 for s in splits_of.values())  # no burst split across train and val
    assert {s for (s,) in splits_of.values()} == {"train", "val", "test"}
    by_season = split_photos(read_image_labels(labels, tmp_path, split_by="season"), {"train": 4, "val": 1, "test": 1})
    seasons: dict[str, set[str]] = {}
    for season, split in zip(by_season.groups, by_season.splits):
        seasons.setdefault(season, set()).add(split)
    assert all(len(s) == 1 for s in seasons.values()) and len(seasons) == 6
    assert {s for (s,) in seasons.values()} == {"train", "val", "test"}
    assert "filepath,split,seq_id,labels" in image_splits_csv(by_season)


def test_photos_without_groups_are_split_per_class(tmp_path):
    rows = ["filepath,label"] + [f"p{i}.jpg,{'cat' if i % 2 else 'blank'}" for i in range(20)]
    photos = split_photos(read_image_labels(_write(tmp_path / "labels.csv", "\n".join(rows) + "\n"), tmp_path), None)
    for column in range(2):  # every class in every split
        assert {s for s, t in zip(photos.splits, photos.targets[:, column]) if t} == {"train", "val", "test"}


def test_a_split_column_is_kept_whole_or_refused(tmp_path):
    given = read_image_labels(_write(tmp_path / "a.csv", "filepath,label,split\na.jpg,cat,train\nb.jpg,cat,holdout\nc.jpg,cat,VAL\n"), tmp_path)
    assert split_photos(given, None).splits == ["train", "test", "val"]  # holdout: a video labels file's name for test
    with pytest.raises(ConfigError, match="some photos have a split and others not"):
        read_image_labels(_write(tmp_path / "b.csv", "filepath,label,split\na.jpg,cat,train\nb.jpg,cat,\n"), tmp_path)
    with pytest.raises(ConfigError, match="b.jpg has split 'dev'; split can only be train, val, test"):
        read_image_labels(_write(tmp_path / "c.csv", "filepath,label,split\na.jpg,cat,train\nb.jpg,cat,dev\n"), tmp_path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("path,label\na.jpg,cat\n", "needs a 'filepath' column"),
        ("filepath,split\na.jpg,train\n", "needs a 'label' column or one 0/1 column per class"),
        ("filepath,label\n", "no rows"),
        ("filepath,cat\na.jpg,0\n", "no row has a label"),
    ],
)
def test_unusable_labels_are_refused_naming_the_file(tmp_path, text, message):
    labels = _write(tmp_path / "labels.csv", text)
    with pytest.raises(ConfigError, match=message) as error:
        with pytest.warns(UserWarning) if "no row has" in message else nullcontext():
            read_image_labels(labels, tmp_path)
    assert str(labels) in str(error.value)


def test_targets_widened_to_a_model_s_species(tmp_path):
    photos = read_image_labels(_write(tmp_path / "labels.csv", "filepath,label\na.jpg,cat\nb.jpg,zebra\n"), tmp_path)
    wide = photos.with_species(["blank", "cat", "elephant", "zebra"])
    assert np.array_equal(wide.targets, [[0, 1, 0, 0], [0, 0, 0, 1]])


def test_label_rows_with_boxes_are_one_crop_each(tmp_path):
    labels = _write(tmp_path / "labels.csv", "filepath,label,x1,y1,x2,y2\na.jpg,cat,10,20,110,90\na.jpg,Lion,0.5,0.1,0.9,0.6\nb.jpg,cat,5,5,50,50\n")
    photos = read_image_labels(labels, tmp_path)
    assert photos.species == ["cat", "lion"] and photos.targets.tolist() == [[1, 1], [1, 0]]
    assert photos.boxes == [[((10.0, 20.0, 110.0, 90.0), "cat"), ((0.5, 0.1, 0.9, 0.6), "lion")], [((5.0, 5.0, 50.0, 50.0), "cat")]]
    assert photos.box_targets(0, 1).tolist() == [0, 1]
    assert read_image_labels(_write(tmp_path / "plain.csv", "filepath,label\na.jpg,cat\n"), tmp_path).boxes is None
    with pytest.raises(ConfigError, match=r"line 3: no box .* where other rows have one"):
        read_image_labels(_write(tmp_path / "half.csv", "filepath,label,x1,y1,x2,y2\na.jpg,cat,1,2,3,4\nb.jpg,cat,,,,\n"), tmp_path)
    with pytest.raises(ConfigError, match=r"line 2: the box 30, 2, 3, 4 is empty"):
        read_image_labels(_write(tmp_path / "empty.csv", "filepath,label,x1,y1,x2,y2\na.jpg,cat,30,2,3,4\n"), tmp_path)
