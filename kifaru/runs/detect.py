"""``kifaru detect``: MegadetectorLite over many files, with outputs the camera-trap ecosystem reads.

A run on the engine (:mod:`kifaru.runs.engine`): each file gets a record, its detections frame by
frame, or a failure with the reason, and notes on what was odd about it (a clip cut short: the
frames that could be read are used). Files are read here or in worker processes (``num_workers``),
where a file that kills its worker becomes that file's failure record.

The journal stays after the run. The rule for an output folder that holds an earlier run (the
engine's, the same as predict's): with the same settings, the run continues (files done are not
done again; a finished run's outputs are written again, e.g. with another ``threshold``); with
other settings, or when the folder holds outputs but no journal (whose settings cannot be known),
it is refused with a ConfigError saying what differs, unless ``overwrite`` starts over.

Outputs (writers by name, :mod:`kifaru.outputs`), written when every file has a record, or for the
files finished, marked partial, when the run is interrupted:

- ``detections.json``: MegaDetector batch-output format 1.6 (Timelapse), paths relative to the
  data folder (or ``relative_to``), boxes kept down to a low threshold;
- ``detection_summary.csv``: one row per file: animal or blank at the threshold, the highest
  confidence, frames with an animal, first and last time one is seen, and its notes;
- ``segments.csv``: one row per interval in which an animal is seen in a clip (its boxes linked
  over the scored frames, :mod:`kifaru.segments`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from kifaru.config.video import VideoLoaderConfig
from kifaru.exceptions import ConfigError
from kifaru.outputs import RunDescription, write_outputs
from kifaru.runs.shards import run_settings, select_shard, written_names
from kifaru.segments.crops import label_segments
from kifaru.outputs.detection_summary import SUMMARY_CSV
from kifaru.outputs.paths import choose_root
from kifaru.runs.backends import backend_for
from kifaru.runs.engine import Progress, RunResult, run_items
from kifaru.runs.inputs import Item, items_from
from kifaru.runs.journal import Journal
from kifaru.runs.records import Record
from kifaru.runs.resolve import DetectorSetup, resolve_detector

DETECTIONS_JSON = "detections.json"
PROGRESS_FILE = ".kifaru-detect-progress.jsonl"
WRITERS = ("megadetector_json", "detection_summary", "segments_csv", "results_jsonl")
FILENAMES = {"megadetector_json": DETECTIONS_JSON, "detection_summary": SUMMARY_CSV}
OUTPUT_KEYS = {"megadetector_json": "detections", "detection_summary": "summary", "segments_csv": "segments", "results_jsonl": "results"}

# kifaru detect samples frames at 1 fps by default: a camera-trap clip's animal stays for seconds.
DEFAULT_DETECT_FPS = 1.0
DEFAULT_DETECT_THRESHOLD = 0.25  # MegadetectorLite's default confidence: a box it keeps counts
# Worker processes by default: a file that kills its worker (a decoder crash, memory) is that
# file's failure, not the run's end. See docs/benchmarks.md for their speed.
DEFAULT_DETECT_WORKERS = 2


def detect_inputs(data_dir: Optional[Path] = None, filepaths: Optional[Path] = None) -> tuple[list[Path], int]:
    """The files to detect on (every video and image under ``data_dir``, searched recursively,
    or those a CSV's ``filepath`` column lists) and how many of the CSV's rows repeat a file."""
    from kifaru.runs.inputs import read_filepaths_csv
    from kifaru.video.media import find_media

    if data_dir is not None:
        if not Path(data_dir).is_dir():
            raise ConfigError(f"--data-dir {data_dir}: not a folder")
        files = list(find_media(Path(data_dir)))
        if not files:
            raise ConfigError(f"--data-dir {data_dir}: no videos or images found in it")
        return files, 0
    if filepaths is None:
        raise ConfigError("give a data folder (--data-dir) or a CSV of files (--filepaths)")
    listed, repeated_rows = read_filepaths_csv(Path(filepaths), "--filepaths")
    # Repeats as paths ("a.mp4" and "./a.mp4" are one file), not only as written.
    unique = list(dict.fromkeys(Path(p) for p in listed))
    return unique, repeated_rows + len(listed) - len(unique)


def default_detect_config(fps: float = DEFAULT_DETECT_FPS, **detector: Any) -> VideoLoaderConfig:
    """Frames at ``fps``, the whole frame, MegadetectorLite with zamba's defaults unless given."""
    return VideoLoaderConfig(fps=fps, ensure_total_frames=False, megadetector_lite_config=detector)


@dataclass
class DetectRun:
    """Everything a detect run needs, resolved: files, settings, detector, outputs."""

    items: list[Item]
    output_dir: Path
    config: VideoLoaderConfig
    threshold: float
    root: Path  # MegaDetector paths are relative to it
    detector: DetectorSetup
    num_workers: int
    overwrite: bool
    base: Path  # the working folder relative input names are read from
    segment_classifier: Any = None  # kifaru.segments.crops.CropClassifier: labels the segments' crops
    shard: Any = None  # kifaru.runs.shards.ShardSelection: this run's part of the files
    backend: str = "local"  # or "ray" (kifaru.runs.ray_backend)
    ray_address: Optional[str] = None

    def journal(self) -> Journal:
        from kifaru.models import registry

        header = {
            "kifaru_detect_progress": 2,
            "video_loader_config": self.config.model_dump(mode="json", exclude={"cache_dir", "cleanup_cache"}),
            "weights": registry.MEGADETECTOR_LITE.weights_sha256,  # the only weights resolve_detector accepts
        }
        if self.shard is not None:
            header["shard"] = str(self.shard.shard)
        return Journal(
            self.output_dir / PROGRESS_FILE,
            header,
            outputs=[self.output_dir / name for name in FILENAMES.values()],
            keep=True,
        )

    def description(self, partial: Optional[tuple[int, int]] = None) -> RunDescription:
        from kifaru.models import registry

        return RunDescription(
            "detect", loader_config=self.config, threshold=self.threshold, root=self.root, base=self.base, partial=partial,
            model_sha256=registry.MEGADETECTOR_LITE.weights_sha256,
            crop_classifier=self.segment_classifier.describe() if self.segment_classifier is not None else None,
            settings=run_settings(self.journal().header), outputs=written_names(WRITERS, FILENAMES),
            shard=self.shard.describe() if self.shard is not None else None,
        )  # fmt: skip


@dataclass
class DetectReport:
    run: DetectRun
    records: list[Record]
    skipped: int  # files already done in an earlier, interrupted run
    outputs: dict[str, Path]

    @property
    def failed(self) -> list[Record]:
        return [r for r in self.records if r.failed]


def resolve_detect_run(
    filepaths: Sequence[Path],
    output_dir: Path,
    *,
    video_loader_config: Optional[VideoLoaderConfig] = None,
    threshold: float = DEFAULT_DETECT_THRESHOLD,
    relative_to: Optional[Path] = None,
    data_dir: Optional[Path] = None,
    overwrite: bool = False,
    weights: Optional[Path] = None,
    num_workers: Optional[int] = None,
    detector: Any = None,
    shard: Any = None,
    backend: str = "local",
    ray_address: Optional[str] = None,
) -> DetectRun:
    """The explicit step: check the settings, choose the paths' root, check an earlier run in
    ``output_dir`` may be continued, and resolve the detector (weights fetched, its export made,
    before any worker starts). ``num_workers``: processes that read and detect (0: this process;
    at most one per core; None: DEFAULT_DETECT_WORKERS, or 0 with ``detector``, a loaded detector
    to use in this process)."""
    from kifaru.runtime.device import usable_cores

    config = video_loader_config or default_detect_config()
    if config.megadetector_lite_config is None:
        raise ConfigError("video_loader_config.megadetector_lite_config is needed to detect (give {} for the defaults)")
    if not 0 <= threshold <= 1:
        raise ConfigError(f"threshold {threshold} is not between 0 and 1")
    base = Path.cwd()
    names = [str(p) for p in filepaths]
    root = choose_root(names, base, relative_to=relative_to, data_dir=data_dir)
    if num_workers is None:
        num_workers = 0 if detector is not None else DEFAULT_DETECT_WORKERS
    if num_workers < 0:
        raise ConfigError(f"num_workers {num_workers}: give 0 (this process) or more worker processes")
    num_workers = min(num_workers, usable_cores())
    items = items_from(names)
    selection = select_shard(items, shard, base)
    run = DetectRun(
        selection.items if selection is not None else items, Path(output_dir), config, threshold, root, DetectorSetup(), num_workers,
        overwrite, base, shard=selection, backend=backend, ray_address=ray_address,
    )  # fmt: skip
    if not overwrite:
        run.journal().earlier()  # another run's settings are refused now, before the detector loads
    # Ray's actors load the detector as worker processes do: prepared here, loaded there.
    workers = num_workers if backend == "local" else max(num_workers, 1)
    run.detector = resolve_detector(config, weights=weights, workers=workers, detector=detector)
    return run


def detect_files(
    filepaths: Sequence[Path] = (),
    output_dir: Optional[Path] = None,
    *,
    progress: Optional[Progress] = None,
    run: Optional[DetectRun] = None,
    **settings: Any,
) -> DetectReport:
    """Run MegadetectorLite on every file and write the outputs to ``output_dir``.

    ``settings``: those of :func:`resolve_detect_run` (``relative_to``: the folder output paths
    are written relative to, Timelapse's root; ``overwrite`` False: an earlier run with the same
    settings is continued, one with other settings refused; True: start over). ``run``: an
    already resolved run, e.g. to say what will happen before it starts.
    """
    run = run or resolve_detect_run(filepaths, output_dir, **settings)
    run.output_dir.mkdir(parents=True, exist_ok=True)
    task = run.detector.task("detect", run.config)

    def pipeline(todo: Sequence[Item], finish: Any) -> None:
        with backend_for(task, run.num_workers, run.backend, run.ray_address) as backend:
            for record in backend.map(todo):
                finish(record)

    def write(records: list[Record], partial: Optional[tuple[int, int]]) -> dict[str, Path]:
        label_segments(records, run.segment_classifier, run.threshold, run.base, partial)
        written = write_outputs(run.output_dir, WRITERS, records, run.description(partial), FILENAMES)
        return {OUTPUT_KEYS[name]: path for name, path in written.items()}

    result: RunResult = run_items(run.items, pipeline, journal=run.journal(), overwrite=run.overwrite, write=write, progress=progress)
    return DetectReport(run, result.records, result.resumed, result.outputs)
