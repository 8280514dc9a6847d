"""Writers by name: each a pure function of a run's records and its description, written atomically.

A command says which writers it wants (``write_outputs(folder, ["zamba_csv", "failures_csv"],
...)``); a new format is one more module here that registers its writer. ``get_writer`` fails
loudly, listing the writers there are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from kifaru.files import write_text_atomically
from kifaru.registry import Registry
from kifaru.runs.records import Record

if TYPE_CHECKING:
    from kifaru.images.sequences import Grouping


@dataclass(frozen=True)
class RunDescription:
    """What the writers need to know about a run besides its records."""

    command: str  # "detect", "predict", "train"
    loader_config: Any = None  # the VideoLoaderConfig the frames were read with
    species: Sequence[str] = ()  # the classifier's, in its output order
    predict_config: Any = None  # a PredictConfig: proba_threshold, output_class_names, checkpoint
    model: Optional[str] = None  # the classifier: model name or checkpoint file name
    model_sha256: Optional[str] = None  # the classifier's checkpoint, as the journal names it
    threshold: Optional[float] = None  # a box at or above it is an animal (detect's summary, MegaDetector's "typical")
    # Paths in MegaDetector files are written relative to this folder (Timelapse's root folder);
    # names of inputs that are relative paths are read from ``base`` (the working folder of the run).
    root: Optional[Path] = None
    base: Path = field(default_factory=Path.cwd)
    partial: Optional[tuple[int, int]] = None  # (items done, items in the run) of an interrupted run
    # A photo detector's settings (image predict): name, detections_threshold, boxes_kept_down_to.
    detector: Optional[dict[str, Any]] = None
    # Bursts (image predict with sequences): each photo's sequence, and how a sequence's photos
    # make one event (kifaru.images.sequences.AGGREGATIONS).
    sequences: Optional["Grouping"] = None
    aggregation: str = "mean"
    # The image classifier that labelled the segments' crops: {"model", "sha256", "species"}.
    crop_classifier: Optional[dict[str, Any]] = None
    # What the records depend on (the journal's header): shards of one run have the same.
    settings: Optional[dict[str, Any]] = None
    outputs: Optional[dict[str, str]] = None  # writer name -> file name, as the run wrote them
    shard: Optional[dict[str, Any]] = None  # kifaru.runs.shards.ShardSelection.describe()

    @property
    def crop_species(self) -> Sequence[str]:
        return tuple(self.crop_classifier["species"]) if self.crop_classifier else ()

    def animal_threshold(self) -> Optional[float]:
        """A box at or above it is an animal: ``threshold``, else the frame selection's detector
        confidence (None: no detector scored the frames)."""
        if self.threshold is not None:
            return self.threshold
        detector = getattr(self.loader_config, "megadetector_lite_config", None)
        return detector.confidence if detector is not None else None

    def with_partial(self, partial: Optional[tuple[int, int]]) -> "RunDescription":
        from dataclasses import replace

        return replace(self, partial=partial)


Render = Callable[[Sequence[Record], RunDescription], str]


@dataclass(frozen=True)
class Writer:
    name: str
    filename: str  # the default file name in the output folder
    render: Render
    description: str


WRITERS: Registry[Writer] = Registry("output format")


def register_writer(name: str, filename: str, description: str) -> Callable[[Render], Render]:
    def register(render: Render) -> Render:
        WRITERS.register(name, Writer(name, filename, render, description))
        return render

    return register


def get_writer(name: str) -> Writer:
    """The writer ``name``; ConfigError listing the known ones otherwise."""
    return WRITERS[name]


def write_outputs(
    folder: Path,
    writers: Sequence[str],
    records: Sequence[Record],
    description: RunDescription,
    filenames: Optional[dict[str, str]] = None,
) -> dict[str, Path]:
    """Each writer's file in ``folder`` (``filenames`` overrides the default names), each replaced
    atomically so that a reader never sees half a file; returns the paths by writer name."""
    written = {}
    for name in writers:
        writer = get_writer(name)
        path = Path(folder) / (filenames or {}).get(name, writer.filename)
        write_text_atomically(path, writer.render(list(records), description))
        written[name] = path
    return written


# The writers register themselves when imported (pure: no I/O at import).
from kifaru.outputs import detection_summary, failures_csv, megadetector_json, results_file, segments_csv, sequence_csv, zamba_csv, zamba_image_csv  # noqa: E402,F401
