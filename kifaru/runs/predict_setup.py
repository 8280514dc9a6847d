"""Resolving a prediction run, before any clip is read: the files, the checkpoint (fetched and
read), the loader config (the model's default with overrides on top), the device, the classifier's
runtime, the outputs and the journal. ``resolve_predict_run`` is the explicit step; a
:class:`PredictRun` is what it resolves, and what :func:`kifaru.runs.predict.predict_model` runs."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from kifaru.config.run import PhotosChoice, PredictConfig
from kifaru.models.registry import DEFAULT_IMAGE_MODEL
from kifaru.config.video import VideoLoaderConfig
from kifaru.exceptions import ConfigError
from kifaru.outputs import RunDescription
from kifaru.outputs.paths import choose_root
from kifaru.outputs.zamba_csv import PREDICTIONS_CSV
from kifaru.runs.inputs import Item, problem_of
from kifaru.runs.journal import Journal, check_finished_outputs
from kifaru.runs.shards import run_settings, select_shard, written_names
from kifaru.runs.resolve import check_frame_count, model_loader_config, with_detector_device

MEGADETECTOR_JSON = "megadetector_predictions.json"
CONFIGURATION_YAML = "predict_configuration.yaml"
PROGRESS_FILE = ".kifaru-predict-progress.jsonl"
PHOTO_PREDICTIONS_CSV = "zamba_image_predictions.csv"  # photos: image, beside the videos' zamba_predictions.csv
# What the user asks for (--output-format) -> the writers that make it.
OUTPUT_FORMATS = {"csv": ("zamba_csv", "failures_csv"), "megadetector": ("megadetector_json",), "segments": ("segments_csv",)}
DEFAULT_OUTPUT_FORMATS = ("csv",)
OUTPUT_FILENAMES = {"megadetector_json": MEGADETECTOR_JSON}
OUTPUT_KEYS = {"zamba_csv": "predictions", "failures_csv": "failures", "megadetector_json": "megadetector", "results_jsonl": "results"}
# Written by every run: the records in full, what kifaru report and kifaru export read.
ALWAYS_WRITTEN = ("results_jsonl",)


class PredictWarning(UserWarning):
    """Something about a prediction run the user should know (ignored options, dropped rows)."""


@dataclass
class PredictRun:
    """Everything a prediction run needs, resolved: files, model, device, outputs."""

    predict_config: PredictConfig  # with checkpoint, model_name and save_dir filled in
    video_loader_config: VideoLoaderConfig
    checkpoint: Any  # kifaru.models.checkpoint_info.VideoModelCheckpoint, without its weights
    checkpoint_sha256: str
    device: str
    files: list[Item]
    duplicates: int = 0  # rows of the filepaths CSV dropped as repeats
    ignored: str = ""  # files in data_dir that are not videos, e.g. "3 .jpg"
    # The photos of data_dir, with photos: image: their own run (kifaru.runs.image_predict.ImageRun).
    photos_run: Any = None
    # Which runtime runs the classifier (kifaru.models.runner.RuntimeChoice): set by
    # choose_classifier_runtime, before the run starts or by it.
    classifier_runtime: Any = None
    output_formats: tuple[str, ...] = DEFAULT_OUTPUT_FORMATS
    root: Optional[Path] = None  # MegaDetector paths are relative to it
    base: Path = Path(".")  # the working folder of the run
    segment_classifier: Any = None  # kifaru.segments.crops.CropClassifier: labels the segments' crops
    shard: Any = None  # kifaru.runs.shards.ShardSelection: this run's part of the files
    backend: str = "local"  # where clips are read and classified: or "ray" (kifaru.runs.ray_backend)
    ray_address: Optional[str] = None
    gpus_asked: Optional[int] = None  # predict_config's gpus as given: 0 keeps a Ray run's classifier off the GPUs

    @property
    def screen(self) -> Any:
        """Fast mode's screen (kifaru.video.screen.Screen), or None: exact mode, or a loader
        config without the detector, which leaves nothing to screen with."""
        from kifaru.config.run import Preset
        from kifaru.video.screen import Screen

        if self.predict_config.preset != Preset.fast or self.video_loader_config.megadetector_lite_config is None:
            return None
        return Screen()

    @property
    def writers(self) -> list[str]:
        return [writer for name in self.output_formats for writer in OUTPUT_FORMATS[name]] + list(ALWAYS_WRITTEN)

    def journal(self) -> Journal:
        """What the records depend on: the checkpoint and how frames are read."""
        header = {
            "kifaru_predict_progress": 2,
            "checkpoint_sha256": self.checkpoint_sha256,
            "video_loader_config": self.video_loader_config.model_dump(mode="json", exclude={"cache_dir", "cleanup_cache"}),
        }
        if self.screen is not None:  # fast mode: its records are not exact mode's
            header["screen"] = self.screen.describe()
        if self.shard is not None:
            header["shard"] = str(self.shard.shard)
        return Journal(self.save_dir / PROGRESS_FILE, header, outputs=_finished_outputs(self.save_dir), overwrite_hint=OVERWRITE_HINT)

    def description(self, partial: Optional[tuple[int, int]] = None) -> RunDescription:
        return RunDescription(
            "predict",
            loader_config=self.video_loader_config,
            species=self.species,
            predict_config=self.predict_config,
            model=Path(self.predict_config.checkpoint).name,
            model_sha256=self.checkpoint_sha256,
            crop_classifier=self.segment_classifier.describe() if self.segment_classifier is not None else None,
            settings=run_settings(self.journal().header),
            outputs=written_names(self.writers, OUTPUT_FILENAMES),
            shard=self.shard.describe() if self.shard is not None else None,
            root=self.root,
            base=self.base,
            partial=partial,
        )

    @property
    def species(self) -> list[str]:
        return self.checkpoint.species

    @property
    def loading_processes(self) -> int:
        """num_workers, but at most one per CPU core: more only compete for the same cores (and
        each holds its own detector and frames)."""
        from kifaru.runtime.device import usable_cores

        return min(self.predict_config.num_workers, usable_cores())

    @property
    def save_dir(self) -> Path:
        return Path(self.predict_config.save_dir)


# -- resolving ------------------------------------------------------------------------------


def resolve_predict_run(
    predict_config: PredictConfig,
    video_loader_config: Optional[VideoLoaderConfig] = None,
    *,
    video_loader_overrides: Optional[dict[str, Any]] = None,
    overrides_name: str = "video_loader_overrides",
    output_formats: Sequence[str] = DEFAULT_OUTPUT_FORMATS,
    relative_to: Optional[Path] = None,
    shard: Any = None,
) -> PredictRun:
    """The explicit step: find the files, fetch and read the checkpoint, pick the device and the
    loader config, and check the outputs can be written. Raises ConfigError (or another
    KifaruError) naming the problem before any clip is read.

    ``video_loader_config`` None: the checkpoint's own (kifaru records it), else the official
    one of the model's family. ``video_loader_overrides``: fields set on top of either; a bad one
    is reported as ``{overrides_name} FIELD=VALUE`` (the CLI's ``--set``). ``output_formats``:
    names of :data:`OUTPUT_FORMATS`; ``relative_to``: the folder MegaDetector paths are written
    relative to (Timelapse's root), else data_dir, else the folder holding every file.
    """
    from kifaru.models.checkpoint_info import read_checkpoint_info
    from kifaru.models.download import sha256_of
    from kifaru.models.model_classes import require_media
    from kifaru.models.official import default_model_name
    from kifaru.models.weights import model_cache_dir, stamped_sha256

    config = predict_config
    formats = _checked_output_formats(output_formats)
    save_dir = Path(config.save_dir) if config.save_dir is not None else Path.cwd()
    files, duplicates, ignored, photos = _input_files(config)
    base = Path.cwd()
    root = None
    if "megadetector" in formats:
        data_dir = Path(config.data_dir) if config.data_dir is not None else None
        root = choose_root([item.name for item in files], base, relative_to=relative_to, data_dir=data_dir)
    selection = select_shard(files, shard, base)
    if selection is not None:  # the photos beside them (photos: image) take their own shard
        files = selection.items
    checking_outputs = config.save and not config.dry_run and not config.overwrite
    if checking_outputs:  # before the checkpoint is fetched
        check_finished_outputs(save_dir / PROGRESS_FILE, _finished_outputs(save_dir), overwrite_hint=OVERWRITE_HINT)

    if config.checkpoint is not None:
        checkpoint_path = Path(config.checkpoint)
    else:
        checkpoint_path = _official_checkpoint(config)
    checkpoint = read_checkpoint_info(checkpoint_path)  # the description only: no weights, no PyTorch
    require_media(checkpoint.model_class, "video", checkpoint_path)
    # As zamba does, a checkpoint's model_class decides its family (and so its default loader config).
    family = default_model_name(checkpoint.model_class)
    if config.checkpoint is not None and family and "model_name" in config.model_fields_set and config.model_name != family:
        warnings.warn(
            PredictWarning(f"model_name '{config.model_name}' is ignored: the checkpoint is a {checkpoint.model_class} ({family})"),
            stacklevel=2,
        )
    loader_config = model_loader_config(
        video_loader_config, checkpoint.hyper_parameters, checkpoint.model_class, family, checkpoint.path,
        video_loader_overrides, overrides_name,
    )  # fmt: skip
    check_frame_count(checkpoint.hyper_parameters, loader_config)
    if config.proba_threshold is not None and config.output_class_names:
        warnings.warn(PredictWarning("output_class_names is ignored: proba_threshold gives 0/1 per species"), stacklevel=2)
    device = _device(config.gpus)
    # The values used, as zamba records them in predict_configuration.yaml.
    resolved = config.model_copy(
        update={
            "checkpoint": checkpoint_path,
            "save_dir": save_dir,
            "model_name": family or config.model_name,
            "gpus": (config.gpus or 1) if device.startswith("cuda") else 0,
            "model_cache_dir": model_cache_dir(config.model_cache_dir),
        }
    )
    loader_config = with_detector_device(loader_config, device)
    run = PredictRun(
        predict_config=resolved,
        video_loader_config=loader_config,
        checkpoint=checkpoint,
        # An official checkpoint was hashed when it was checked: its stamp says so while unchanged.
        checkpoint_sha256=stamped_sha256(checkpoint_path) or sha256_of(checkpoint_path),
        device=device,
        gpus_asked=config.gpus,
        files=files,
        duplicates=duplicates,
        ignored=ignored,
        output_formats=formats,
        root=root,
        base=base,
        shard=selection,
        photos_run=_photos_run(resolved, relative_to, shard) if photos and config.photos == PhotosChoice.image and not config.dry_run else None,
    )
    if checking_outputs:  # an interrupted run here must have been made with these settings
        run.journal().earlier()
    return run


def _checked_output_formats(formats: Sequence[str]) -> tuple[str, ...]:
    unknown = [name for name in formats if name not in OUTPUT_FORMATS]
    if unknown or not formats:
        raise ConfigError(
            f"output format {', '.join(map(repr, unknown)) or 'none'}: choose among {', '.join(OUTPUT_FORMATS)} "
            "(several separated by commas)"
        )
    return tuple(dict.fromkeys(formats))


def _input_files(config: PredictConfig) -> tuple[list[Item], int, str, int]:
    """(the videos, duplicate rows dropped, what was ignored, photos found in data_dir)."""
    from kifaru.runs.inputs import list_videos, read_filepaths_csv

    if config.filepaths is not None:
        listed, duplicates = read_filepaths_csv(Path(config.filepaths), "filepaths")
        data_dir = config.data_dir
        files = [_input_file(i, str(Path(data_dir) / p) if data_dir is not None else p) for i, p in enumerate(listed)]
        if all(f.problem == "no such file" for f in files):
            raise ConfigError(
                f"filepaths {config.filepaths}: none of its {len(files)} files exist (e.g. {files[0].path}). "
                "Give absolute paths, or paths relative to data_dir."
            )
        return files, duplicates, "", 0
    if config.data_dir is None:
        raise ConfigError("give data_dir (a folder of videos) or filepaths (a CSV with a 'filepath' column)")
    listing = list_videos(Path(config.data_dir))
    photos = listing.images_ignored
    if not listing.videos:
        images = f" It holds {photos} photos: classify them with `kifaru image predict --data-dir {config.data_dir}`." if photos else ""
        raise ConfigError(f"data_dir {config.data_dir}: no videos found in it (searched recursively).{images}")
    if photos and config.photos is None:
        raise ConfigError(
            f"data_dir {config.data_dir} holds {len(listing.videos)} videos and {photos} photos: kifaru predict classifies "
            "videos with a video model, and photos need an image model. Give --photos image (photos: image) to classify "
            f"both in this run (the photos with the image model {DEFAULT_IMAGE_MODEL}, into {PHOTO_PREDICTIONS_CSV} "
            f"beside the videos' outputs), or --photos skip (photos: skip) for the videos only, as zamba does, and then "
            f"`kifaru image predict --data-dir {config.data_dir}` for the photos"
        )
    # As zamba does: files found in data_dir are written with their absolute path.
    return [_input_file(i, str(p.resolve())) for i, p in enumerate(listing.videos)], 0, listing.describe_ignored(), photos


def _photos_run(config: PredictConfig, relative_to: Optional[Path], shard: Any) -> Any:
    """The image run for the photos of data_dir (photos: image), resolved now: its model is
    fetched and checked before any file is read."""
    from kifaru.config.image import ImagePredictConfig
    from kifaru.runs.image_predict import resolve_image_run

    photos = ImagePredictConfig(
        data_dir=config.data_dir, save_dir=config.save_dir, save=config.save, overwrite=config.overwrite, gpus=config.gpus,
        num_workers=config.num_workers, model_cache_dir=config.model_cache_dir, weight_download_region=config.weight_download_region,
        results_file_name=Path(PHOTO_PREDICTIONS_CSV),
    )  # fmt: skip
    from kifaru.outputs.results_file import IMAGE_RESULTS_FILE

    run = resolve_image_run(photos, relative_to=relative_to, shard=shard)
    run.results_file = IMAGE_RESULTS_FILE  # beside the videos' own
    return run


def _input_file(index: int, filepath: str) -> Item:
    path = Path(filepath)
    return Item(index, filepath, path, problem_of(path))


OVERWRITE_HINT = "--overwrite (overwrite: true)"


def _finished_outputs(save_dir: Path) -> list[Path]:
    """As zamba: either file marks a finished run."""
    return [save_dir / PREDICTIONS_CSV, save_dir / CONFIGURATION_YAML]


def _official_checkpoint(config: PredictConfig) -> Path:
    from kifaru.models.official import official_checkpoint

    return official_checkpoint(
        config.model_name,
        region=config.weight_download_region,
        cache_dir=Path(config.model_cache_dir) if config.model_cache_dir else None,
    )


def _device(gpus: Optional[int]) -> str:
    from kifaru.runtime.device import check_device

    device = check_device(gpus, "gpus")
    if gpus is not None and gpus > 1:
        warnings.warn(PredictWarning(f"gpus {gpus}: kifaru predict runs the model on one GPU"), stacklevel=3)
    return device


def choose_classifier_runtime(run: PredictRun) -> Any:
    """The run's classifier runtime (kifaru.models.runner.RuntimeChoice), chosen once: the ONNX
    export is made and checked here, before loading processes start (a first run of a checkpoint
    sends notices while it exports)."""
    from kifaru.models.runner import choose_runtime

    if run.classifier_runtime is None:
        cache_dir = Path(run.predict_config.model_cache_dir)
        run.classifier_runtime = choose_runtime(run.checkpoint, run.checkpoint_sha256, run.device, cache_dir)
    return run.classifier_runtime
