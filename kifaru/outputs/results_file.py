"""``kifaru_results.jsonl``: a run's every record, in full, with what the run was (its command,
classes, model, thresholds, root folder, bursts). Every command that reads files writes it, so
that what is made from a finished run later (``kifaru report``, ``kifaru export camtrap-dp``)
starts from the same records as the run's own outputs, and never from a CSV that dropped the
boxes.

The first line is the run, each further line one record (:class:`kifaru.runs.records.Record`).
Photos predicted beside videos (``photos: image``) have their own file,
``kifaru_image_results.jsonl``, since their classes and model are their own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from types import SimpleNamespace
from pathlib import Path
from typing import Any, Optional, Sequence

from kifaru.exceptions import ConfigError
from kifaru.outputs import RunDescription, register_writer
from kifaru.runs.records import Record

RESULTS_FILE = "kifaru_results.jsonl"
IMAGE_RESULTS_FILE = "kifaru_image_results.jsonl"
RESULTS_FILES = (RESULTS_FILE, IMAGE_RESULTS_FILE)
FORMAT = "kifaru_results"
FORMAT_VERSION = 1


@register_writer("results_jsonl", RESULTS_FILE, "every file's record in full (boxes per frame, probabilities, failures), read by kifaru report and kifaru export")
def results_jsonl(records: Sequence[Record], run: RunDescription) -> str:
    lines = [json.dumps(run_header(run), ensure_ascii=False)]
    lines += [json.dumps(record.to_json(), ensure_ascii=False) for record in records]
    return "\n".join(lines) + "\n"


def run_header(run: RunDescription) -> dict[str, Any]:
    """What a run was, as plain data (the first line of the results file)."""
    from kifaru import __version__

    sequences = None
    if run.sequences is not None:
        grouping = run.sequences
        sequences = {
            "seq_ids": grouping.seq_ids, "untimed": grouping.untimed, "rule": grouping.rule,
            "given": grouping.given, "gap_seconds": grouping.gap_seconds,
        }  # fmt: skip
    return {
        FORMAT: FORMAT_VERSION,
        "kifaru_version": __version__,
        "command": run.command,
        "species": list(run.species),
        "model": run.model,
        "model_sha256": run.model_sha256,
        "detector": run.detector,  # a photo detector's settings (image predict)
        "frame_detector": _video_detector(run),  # the detector that scored a video run's frames
        "animal_threshold": run.animal_threshold(),
        "root": None if run.root is None else str(run.root),
        "base": str(run.base),
        "partial": None if run.partial is None else list(run.partial),
        "sequences": sequences,
        "aggregation": run.aggregation,
        "crop_classifier": run.crop_classifier,
        "settings": run.settings,
        "outputs": run.outputs,
        "shard": run.shard,
        # What writers read of the configs, so that merged shards are written as one run is.
        "video_loader_config": None if run.loader_config is None else run.loader_config.model_dump(mode="json"),
        "prediction_values": _prediction_values(run.predict_config),
    }


def _prediction_values(config: Any) -> Optional[dict[str, Any]]:
    if config is None or not hasattr(config, "proba_threshold"):
        return None
    values = {"proba_threshold": config.proba_threshold, "output_class_names": bool(getattr(config, "output_class_names", False))}
    if getattr(config, "preset", "exact") != "exact":  # fast mode's CSV has its decided_by column
        values["preset"] = str(config.preset)
    return values


def _video_detector(run: RunDescription) -> Optional[dict[str, Any]]:
    """The detector that scored a video run's frames (None: frames were not scored)."""
    from kifaru.models import registry

    config = getattr(run.loader_config, "megadetector_lite_config", None)
    if config is None:
        return None
    return {"name": "MegadetectorLite", "confidence": config.confidence, "weights_sha256": registry.MEGADETECTOR_LITE.weights_sha256}


@dataclass
class RunResults:
    """One results file read back: the run and its records."""

    path: Path
    header: dict[str, Any]
    description: RunDescription
    records: list[Record]

    @property
    def command(self) -> str:
        return self.description.command

    @property
    def kifaru_version(self) -> str:
        return str(self.header.get("kifaru_version", ""))

    @cached_property
    def root(self) -> Path:
        """The folder files are named relative to: the run's root (MegaDetector's), else the
        deepest folder that holds every file."""
        from kifaru.outputs.paths import choose_root

        run = self.description
        if run.root is not None:
            return run.root
        return choose_root([r.item for r in self.records], run.base, relative_to=None, data_dir=None)

    def relative_name(self, item: str) -> str:
        """``item`` relative to :attr:`root`, with forward slashes."""
        from kifaru.outputs.paths import relative_path

        return relative_path(item, self.root, self.description.base)


def read_results(folder: Path) -> list[RunResults]:
    """The results files in ``folder`` (a run's output folder), each read back; ConfigError naming
    the folder when it holds none, or one that is damaged."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder: give the output folder of a kifaru predict, detect or image predict run")
    found = [folder / name for name in RESULTS_FILES if (folder / name).is_file()]
    if not found:
        raise ConfigError(
            f"{folder} holds no {RESULTS_FILE}: give the output folder of a finished kifaru predict, detect or image "
            f"predict run (kifaru 0.1.0 and later write it beside their other outputs); run it again if it was made before"
        )
    return [read_results_file(path) for path in found]


def read_results_file(path: Path) -> RunResults:
    path = Path(path)
    with open(path, encoding="utf-8") as handle:
        lines = [line for line in handle.read().splitlines() if line.strip()]
    try:
        header = json.loads(lines[0]) if lines else None
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get(FORMAT) != FORMAT_VERSION:
        raise ConfigError(f"{path}: not a kifaru results file of version {FORMAT_VERSION} (its first line does not say what run it holds); run the command again")
    records = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            records.append(Record.from_json(json.loads(line)))
        except (json.JSONDecodeError, TypeError) as error:
            raise ConfigError(f"{path}, line {number}: not a record ({error}); the file is damaged: run the command again") from None
    return RunResults(path, header, description_of(header), records)


def description_of(header: dict[str, Any]) -> RunDescription:
    """The RunDescription a results header was written from (enough for every writer that reads
    records: the loader config itself is not kept, its detector threshold is)."""
    sequences = header.get("sequences")
    root = header.get("root")
    partial = header.get("partial")
    return RunDescription(
        header.get("command", ""),
        species=list(header.get("species") or ()),
        model=header.get("model"),
        model_sha256=header.get("model_sha256"),
        threshold=header.get("animal_threshold"),
        root=None if root is None else Path(root),
        base=Path(header.get("base") or "."),
        partial=None if partial is None else (int(partial[0]), int(partial[1])),
        detector=header.get("detector"),
        sequences=None if sequences is None else _grouping(sequences),
        aggregation=header.get("aggregation", "mean"),
        crop_classifier=header.get("crop_classifier"),
        settings=header.get("settings"),
        outputs=header.get("outputs"),
        shard=header.get("shard"),
        loader_config=_loader_config(header.get("video_loader_config")),
        predict_config=None if header.get("prediction_values") is None else SimpleNamespace(**header["prediction_values"]),
    )


def _grouping(sequences: dict[str, Any]) -> Any:
    from kifaru.images.sequences import Grouping

    return Grouping(
        dict(sequences["seq_ids"]), list(sequences.get("untimed") or ()), sequences.get("rule", ""),
        dict(sequences.get("given") or {}), float(sequences.get("gap_seconds", 60.0)),
    )  # fmt: skip


def _loader_config(dump: Optional[dict[str, Any]]) -> Any:
    if dump is None:
        return None
    from kifaru.config.video import VideoLoaderConfig

    return VideoLoaderConfig.model_validate(dump)
