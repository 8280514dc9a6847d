"""kifaru export camtrap-dp: a run's records as a Camtrap DP 1.0.2 package, validated by
frictionless against the table schemas kifaru ships (offline)."""

from __future__ import annotations

import csv
import json
import re
from datetime import timedelta, timezone

import pytest

from kifaru.exceptions import ConfigError
from kifaru.export.camtrap_dp import PROFILE_URL, TABLES, ExportSettings, export_camtrap_dp, table_fields, validate_package
from kifaru.export.taxa import Taxon
from tests.helpers.results import BOAR_BOX_PIXELS, DEER_BOX, PHOTO_SIZE, make_results

pytest.importorskip("frictionless")

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")  # whole seconds and a zone
DATETIME_COLUMNS = {"deploymentStart", "deploymentEnd", "timestamp", "eventStart", "eventEnd", "classificationTimestamp"}
PLUS_TWO = timezone(timedelta(hours=2))


def rows(folder, table):
    with open(folder / f"{table}.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_deployments(path, extra_column=None):
    header = ["deploymentID", "latitude", "longitude", "deploymentStart", "deploymentEnd", "cameraModel"]
    lines = [
        ["cam1", "52.70442", "23.84995", "2024-04-30T12:00:00Z", "2024-05-10T12:00:00Z", "Reconyx-PC800"],
        ["cam2", "52.71", "23.86", "2024-04-30T12:00:00+02:00", "2024-05-10T12:00:00+02:00", ""],
    ]
    if extra_column:
        header.append(extra_column)
        lines = [line + ["x"] for line in lines]
    path.write_text("\n".join(",".join(line) for line in [header, *lines]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def results(tmp_path):
    return make_results(tmp_path)


@pytest.fixture
def package(results, tmp_path):
    settings = ExportSettings(deployments=write_deployments(tmp_path / "deployments.csv"), utc_offset=PLUS_TWO, project_title="Test", contributors=["A. Person"])
    export = export_camtrap_dp(results.folder, tmp_path / "package", settings)
    return export


def test_the_package_is_valid_camtrap_dp_1_0_2_with_videos_photos_bursts_blanks_and_failures(package):
    assert validate_package(package.folder) == []
    media = {row["fileName"]: row for row in rows(package.folder, "media")}
    # Every file that exists is a medium, the damaged one too; the file never found is not.
    assert sorted(media) == ["broken.mp4", "deer.mp4", "empty.mp4", "p1.jpg", "p2.jpg", "p3.jpg"]
    assert "kifaru could not read it (decode): cannot be opened as a video" in media["broken.mp4"]["mediaComments"]
    assert media["deer.mp4"]["fileMediatype"] == "video/mp4" and media["p1.jpg"]["fileMediatype"] == "image/jpeg"
    assert media["deer.mp4"]["filePath"] == "cam1/deer.mp4" and media["deer.mp4"]["filePublic"] == "false"
    assert {m["deploymentID"] for m in media.values()} == {"cam1", "cam2"}
    # Times: the clip's creation time; the photos' EXIF times in the cameras' zone; whole seconds.
    assert media["deer.mp4"]["timestamp"] == "2024-05-01T06:30:00Z"
    assert [media[f"p{n}.jpg"]["timestamp"] for n in (1, 2, 3)] == ["2024-05-02T10:00:00+02:00", "2024-05-02T10:00:02+02:00", "2024-05-02T10:30:00+02:00"]
    for table in TABLES:
        for row in rows(package.folder, table):
            for column in DATETIME_COLUMNS & row.keys():
                assert row[column] == "" or TIME.match(row[column]), (table, column, row[column])
    assert any("modification time" in w for w in package.warnings)  # empty.mp4 and broken.mp4 hold no time


def test_a_clip_s_observations_are_its_time_segments_with_species_box_and_classifier(package):
    media = {row["fileName"]: row["mediaID"] for row in rows(package.folder, "media")}
    observations = rows(package.folder, "observations")
    deer = [o for o in observations if o["mediaID"] == media["deer.mp4"]]
    assert len(deer) == 1
    (seen,) = deer
    # Seen from 1.0 s to 2.5 s after 06:30:00: the event rounds outwards to whole seconds.
    assert (seen["eventStart"], seen["eventEnd"]) == ("2024-05-01T06:30:01Z", "2024-05-01T06:30:03Z")
    assert seen["observationLevel"] == "media" and seen["observationType"] == "animal"
    assert seen["scientificName"] == "Capreolus capreolus" and float(seen["classificationProbability"]) == 0.9
    x1, y1, x2, y2 = DEER_BOX
    assert [float(seen[k]) for k in ("bboxX", "bboxY", "bboxWidth", "bboxHeight")] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=1e-4)
    assert seen["classificationMethod"] == "machine"
    assert "deer.ckpt" in seen["classifiedBy"] and "kifaru 0.1.0" in seen["classifiedBy"]
    assert seen["count"] == "1"
    (empty,) = [o for o in observations if o["mediaID"] == media["empty.mp4"]]
    assert empty["observationType"] == "blank" and empty["scientificName"] == ""
    (broken,) = [o for o in observations if o["mediaID"] == media["broken.mp4"]]
    assert broken["observationType"] == "unclassified" and "cannot be opened" in broken["observationComments"]
    assert broken["classifiedBy"] == ""


def test_photos_have_a_row_per_crop_and_each_burst_an_event_row(package):
    media = {row["fileName"]: row["mediaID"] for row in rows(package.folder, "media")}
    observations = rows(package.folder, "observations")
    (p1,) = [o for o in observations if o["mediaID"] == media["p1.jpg"]]
    width, height = PHOTO_SIZE
    x1, y1, x2, y2 = BOAR_BOX_PIXELS
    assert p1["scientificName"] == "Sus scrofa" and float(p1["classificationProbability"]) == 0.8
    assert [float(p1[k]) for k in ("bboxX", "bboxY", "bboxWidth", "bboxHeight")] == pytest.approx([x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height], abs=1e-4)
    (p3,) = [o for o in observations if o["mediaID"] == media["p3.jpg"]]
    assert p3["observationType"] == "blank"
    events = [o for o in observations if o["observationLevel"] == "event"]
    assert len(events) == 2 and all(o["mediaID"] == "" for o in events)
    burst = next(o for o in events if o["eventStart"] == "2024-05-02T10:00:00+02:00")
    assert burst["eventEnd"] == "2024-05-02T10:00:02+02:00" and burst["scientificName"] == "Sus scrofa"
    assert burst["eventID"] == p1["eventID"]  # the photos' rows name their burst
    lone = next(o for o in events if o is not burst)
    assert lone["observationType"] == "blank" and lone["eventID"] == p3["eventID"] != burst["eventID"]


def test_the_package_metadata_has_what_camtrap_dp_requires(package):
    descriptor = json.loads((package.folder / "datapackage.json").read_text())
    assert descriptor["profile"] == PROFILE_URL
    for key in ("resources", "profile", "created", "contributors", "project", "spatial", "temporal", "taxonomic"):
        assert key in descriptor, key
    assert TIME.match(descriptor["created"])
    assert [r["name"] for r in descriptor["resources"]] == list(TABLES)
    assert all(r["schema"].endswith(f"/1.0.2/{r['name']}-table-schema.json") for r in descriptor["resources"])
    project = descriptor["project"]
    assert project["title"] == "Test" and project["observationLevel"] == ["media", "event"]
    assert {"samplingDesign", "captureMethod", "individualAnimals"} <= project.keys()
    assert descriptor["temporal"] == {"start": "2024-04-30", "end": "2024-05-10"}
    assert descriptor["spatial"]["type"] == "Polygon"
    assert descriptor["taxonomic"] == [{"scientificName": "Capreolus capreolus", "taxonRank": "species"}, {"scientificName": "Sus scrofa", "taxonRank": "species"}]
    assert descriptor["contributors"] == [{"title": "A. Person", "role": "contributor"}]
    assert list(rows(package.folder, "deployments")[0]) == table_fields("deployments")  # no kifaru column left in


def test_without_deployments_each_camera_folder_is_one_that_the_user_must_complete(results, tmp_path):
    export = export_camtrap_dp(results.folder, tmp_path / "package")
    deployments = rows(export.folder, "deployments")
    assert [d["deploymentID"] for d in deployments] == ["cam1", "cam2"]
    assert all(d["latitude"] == d["longitude"] == "" for d in deployments)
    assert any("latitude and longitude" in w and "not valid" in w for w in export.warnings)
    # EXIF times have no zone: written as UTC, and their deployment says its times have an issue.
    cam2 = deployments[1]
    assert cam2["timestampIssues"] == "true" and cam2["deploymentStart"] == "2024-05-02T10:00:00Z"
    # What frictionless finds wrong is exactly what the warning says must be filled in.
    errors = validate_package(export.folder)
    assert errors and all("deployments" in e and ('"latitude"' in e or '"longitude"' in e) for e in errors), errors


def test_the_user_s_names_replace_or_add_scientific_names_and_a_class_without_one_is_named(results, tmp_path):
    settings = ExportSettings(taxa={"wild_boar": Taxon("Sus scrofa scrofa", "subspecies"), "european_roe_deer": Taxon("")})
    export = export_camtrap_dp(results.folder, tmp_path / "package", settings)
    observations = rows(export.folder, "observations")
    names = {o["scientificName"] for o in observations}
    assert "Sus scrofa scrofa" in names and "Sus scrofa" not in names
    deer = [o for o in observations if "class european_roe_deer" in o["observationComments"]]
    assert deer and all(o["scientificName"] == "" and o["observationType"] == "animal" for o in deer)
    assert any("no scientific name for the class(es) european_roe_deer" in w for w in export.warnings)
    descriptor = json.loads((export.folder / "datapackage.json").read_text())
    assert descriptor["taxonomic"] == [{"scientificName": "Sus scrofa scrofa", "taxonRank": "subspecies"}]


def test_bad_deployments_are_refused_naming_the_column_or_the_folder(results, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown column\(s\) lattitude \(did you mean latitude\?\)"):
        csv_path = tmp_path / "d.csv"
        csv_path.write_text("deploymentID,lattitude,latitude,longitude,deploymentStart,deploymentEnd\ncam1,1,1,1,2024-01-01T00:00:00Z,2024-01-02T00:00:00Z\n")
        export_camtrap_dp(results.folder, tmp_path / "p1", ExportSettings(deployments=csv_path))
    only_cam1 = tmp_path / "cam1.csv"
    only_cam1.write_text("deploymentID,latitude,longitude,deploymentStart,deploymentEnd\ncam1,1,1,2024-01-01T00:00:00Z,2024-12-31T00:00:00Z\ncamX,1,1,2024-01-01T00:00:00Z,2024-01-02T00:00:00Z\n")
    with pytest.raises(ConfigError, match="no deployment for the camera folder.s. cam2"):
        export_camtrap_dp(results.folder, tmp_path / "p2", ExportSettings(deployments=only_cam1))


def test_a_folder_column_maps_camera_folders_to_deployments_and_is_not_written(results, tmp_path):
    given = tmp_path / "d.csv"
    given.write_text(
        "deploymentID,folder,latitude,longitude,deploymentStart,deploymentEnd\n"
        "DEP-A,cam1,1,2,2024-04-01T00:00:00Z,2024-06-01T00:00:00Z\nDEP-B,cam2,3,4,2024-04-01T00:00:00Z,2024-06-01T00:00:00Z\n"
    )
    export = export_camtrap_dp(results.folder, tmp_path / "package", ExportSettings(deployments=given))
    assert validate_package(export.folder) == []
    assert {m["fileName"]: m["deploymentID"] for m in rows(export.folder, "media")}["p1.jpg"] == "DEP-B"
    assert "folder" not in rows(export.folder, "deployments")[0]


def test_an_existing_package_is_not_replaced_unless_asked(results, tmp_path):
    export_camtrap_dp(results.folder, tmp_path / "package")
    with pytest.raises(ConfigError, match="--overwrite"):
        export_camtrap_dp(results.folder, tmp_path / "package")
    export_camtrap_dp(results.folder, tmp_path / "package", overwrite=True)


def test_segments_labelled_from_their_crops_name_the_image_model_that_did(results, tmp_path):
    from dataclasses import replace

    from kifaru.outputs import get_writer
    from kifaru.outputs.results_file import RESULTS_FILE, read_results_file

    part = read_results_file(results.folder / RESULTS_FILE)
    deer = next(r for r in part.records if r.item.endswith("deer.mp4"))
    deer.outputs["segment_crops"] = [
        {"frame_number": f["frame_number"], "box": f["detections"][0][:4], "probabilities": [0.1, 0.2, 0.7]} for f in deer.frames if f["detections"]
    ]
    run = replace(part.description, crop_classifier={"model": "lila.science", "sha256": "ef" * 32, "species": ["blank", "red_deer", "wild_boar"]})
    (results.folder / RESULTS_FILE).write_text(get_writer("results_jsonl").render(part.records, run))
    export = export_camtrap_dp(results.folder, tmp_path / "package")
    media = {row["fileName"]: row["mediaID"] for row in rows(export.folder, "media")}
    (seen,) = [o for o in rows(export.folder, "observations") if o["mediaID"] == media["deer.mp4"]]
    assert seen["scientificName"] == "Sus scrofa" and float(seen["classificationProbability"]) == 0.7
    assert "its boxes classified by lila.science (sha256 efefefefefef)" in seen["classifiedBy"]


def test_times_the_user_gives_win_and_a_bad_one_is_named(results, tmp_path, capsys):
    from kifaru.cli import EXIT_OK, EXIT_USAGE, main

    given = tmp_path / "times.csv"
    given.write_text("filepath,timestamp\ncam1/empty.mp4,2024-05-01T07:00:00+01:00\n")
    argv = ["export", "camtrap-dp", str(results.folder), "--out", str(tmp_path / "package"), "--timestamps", str(given)]
    assert main(argv) == EXIT_OK
    media = {row["fileName"]: row for row in rows(tmp_path / "package", "media")}
    assert media["empty.mp4"]["timestamp"] == "2024-05-01T07:00:00+01:00" and "timestamp" not in media["empty.mp4"]["mediaComments"]
    assert "1 file(s) hold no capture time" in capsys.readouterr().err  # broken.mp4 only, now
    given.write_text("filepath,timestamp\ncam1/empty.mp4,2024-05-01 07:00\n")
    assert main([*argv, "--overwrite"]) == EXIT_USAGE
    assert "line 2: '2024-05-01 07:00' is not an ISO 8601 time with a time zone" in capsys.readouterr().err


def test_a_taxa_file_names_classes_and_a_bad_rank_is_refused(results, tmp_path, capsys):
    from kifaru.cli import EXIT_OK, EXIT_USAGE, main

    taxa = tmp_path / "taxa.csv"
    taxa.write_text("class,scientificName,taxonRank\nwild_boar,Sus scrofa scrofa,subspecies\n")
    argv = ["export", "camtrap-dp", str(results.folder), "--out", str(tmp_path / "package"), "--taxa", str(taxa)]
    assert main(argv) == EXIT_OK
    assert "Sus scrofa scrofa" in {o["scientificName"] for o in rows(tmp_path / "package", "observations")}
    taxa.write_text("class,scientificName,taxonRank\nwild_boar,Sus scrofa,breed\n")
    assert main([*argv, "--overwrite"]) == EXIT_USAGE
    assert "line 2: taxonRank 'breed' is not one of kingdom" in capsys.readouterr().err
