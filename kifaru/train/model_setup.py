"""What a training run trains, resolved before any clip is read: the network's source (a
checkpoint, an official model, or a new network), the loader config (predict's rule, with the
frame cache on), the frame count, the accelerator, the scheduler's name, and the network itself
with the part that fine-tuning unfreezes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from kifaru.config.run import TrainConfig
from kifaru.config.video import VideoLoaderConfig
from kifaru.exceptions import ConfigError
from kifaru.models.model_classes import TIME_DISTRIBUTED_EFFICIENTNET, require_media


@dataclass
class ModelSource:
    """Where the network comes from: a checkpoint (its description) or a new one."""

    model_class: str
    species: list[str]  # the model's own (a checkpoint's, or the official model's)
    hyper_parameters: dict[str, Any]
    checkpoint_path: Optional[Path]

def model_source(config: TrainConfig) -> ModelSource:
    from kifaru.models.checkpoint_info import read_checkpoint_info
    from kifaru.models.official import official_checkpoint, video_model_entry

    if config.from_scratch:
        entry = video_model_entry(config.model_name)
        hparams = {"num_frames": entry.num_frames} if entry.model_class == TIME_DISTRIBUTED_EFFICIENTNET.name else {}
        return ModelSource(entry.model_class, list(entry.species), hparams, None)
    if config.checkpoint is not None:
        path = Path(config.checkpoint)
    else:
        path = official_checkpoint(
            config.model_name,
            region=config.weight_download_region,
            cache_dir=Path(config.model_cache_dir) if config.model_cache_dir else None,
        )
    info = read_checkpoint_info(path)
    require_media(info.model_class, "video", path)
    return ModelSource(info.model_class, list(info.species), dict(info.hyper_parameters), path)

def train_loader_config(
    config: TrainConfig, model: ModelSource, given: Optional[VideoLoaderConfig], device: str, overrides: Optional[dict[str, Any]], overrides_name: str
) -> VideoLoaderConfig:
    """predict's rule (kifaru.runs.resolve.model_loader_config), with the frame cache always on."""
    from kifaru.config.video import resolve_cache_dir
    from kifaru.models.official import default_model_name
    from kifaru.runs.resolve import model_loader_config, with_detector_device
    from kifaru.train.data import default_frame_cache_dir

    family = config.model_name if config.from_scratch else default_model_name(model.model_class)
    source = model.checkpoint_path or f"model_name {config.model_name}"
    given = model_loader_config(given, model.hyper_parameters, model.model_class, family, source, overrides, overrides_name)
    # Training reads every clip once per epoch: the frame cache is always on.
    cache_dir = resolve_cache_dir(given) or default_frame_cache_dir()
    return with_detector_device(given.model_copy(update={"cache_dir": cache_dir}), device)

def model_name(config: TrainConfig, model: ModelSource) -> str:
    """The written checkpoint's name. As zamba: a given checkpoint trains under its model class's
    default name (a european checkpoint gives time_distributed.ckpt), else model_name."""
    from kifaru.models.official import default_model_name

    if config.checkpoint is not None:
        return default_model_name(model.model_class) or config.model_name
    return config.model_name

def fit_frame_count(model: ModelSource, loader: VideoLoaderConfig) -> None:
    """A new TimeDistributed network takes the loader's frame count; a checkpoint's must match it."""
    from kifaru.runs.resolve import check_frame_count
    from kifaru.video.selection import wanted_total_frames

    if model.checkpoint_path is None and "num_frames" in model.hyper_parameters:
        total = wanted_total_frames(loader)
        if total is not None:
            model.hyper_parameters["num_frames"] = int(total)
    else:
        check_frame_count(model.hyper_parameters, loader)

def accelerator_of(config: TrainConfig) -> tuple[str, int, str]:
    """(accelerator, devices, strategy) for Lightning, from gpus and cpu_processes."""
    from kifaru.runtime.device import available_devices, check_device

    if check_device(config.gpus, "gpus") == "cuda":  # where the best device is MPS, training runs on the CPU
        gpus = config.gpus or sum(name.startswith("cuda") for name in available_devices())  # None: all of them
        return "gpu", gpus, "ddp" if gpus > 1 else "auto"
    return "cpu", config.cpu_processes, "ddp" if config.cpu_processes > 1 else "auto"


# -- the network --------------------------------------------------------------------------------


def build_network(config: TrainConfig, model: ModelSource, species: list[str], kept_head: bool) -> Any:
    """The network to train, and the part of it that BackboneFinetuning unfreezes (None: the
    whole network trains from the start)."""
    from kifaru.models.checkpoint import model_from_checkpoint, normalize_keys, read_checkpoint
    from kifaru.models.model_classes import model_class

    if model.checkpoint_path is not None and kept_head:
        # Built on the CPU, not without memory: its initialisation draws from the generator that
        # config.seed seeded, so a seeded run trains as it did (tests/fixtures/zamba_finetune).
        network = model_from_checkpoint(read_checkpoint(model.checkpoint_path), build_on="cpu")
    elif model.checkpoint_path is not None:
        checkpoint = read_checkpoint(model.checkpoint_path)
        network = model_class(model.model_class).build(checkpoint.hyper_parameters, len(species))
        expected = network.state_dict()
        state = normalize_keys(checkpoint.state_dict, set(expected))
        head = model_class(model.model_class).head_prefix
        kept = {k: v for k, v in state.items() if not k.startswith(head) and k in expected}
        missing = sorted(k for k in set(expected) - set(kept) if not k.startswith(head))
        if missing:
            raise ConfigError(f"checkpoint {model.checkpoint_path}: its backbone lacks {len(missing)} tensors (first: {missing[0]})")
        network.load_state_dict(kept, strict=False)  # the head stays newly initialised
    elif model.model_class == TIME_DISTRIBUTED_EFFICIENTNET.name:
        from kifaru.models.time_distributed import TimeDistributedEfficientNet

        network = TimeDistributedEfficientNet(
            len(species), num_frames=int(model.hyper_parameters.get("num_frames", 16)),
            backbone_name=config.backbone, pretrained=config.backbone_pretrained,
        )  # fmt: skip
    else:
        network = model_class(model.model_class).build(model.hyper_parameters, len(species))
    network.train()
    if model.checkpoint_path is None and not (model.model_class == TIME_DISTRIBUTED_EFFICIENTNET.name and config.backbone_pretrained):
        # Random features (a new backbone without pretrained weights; kifaru cannot fetch
        # SlowFast's Kinetics weights): frozen, they would teach the head nothing. All of it trains,
        # BatchNorm statistics included (zamba's TimeDistributed keeps them frozen: pretrained ones).
        if model.model_class == TIME_DISTRIBUTED_EFFICIENTNET.name:
            network.frozen_batchnorm = False
        return network, None
    # As zamba, for both model classes: everything before the head (`base`) is frozen; fine-tuning
    # unfreezes its last layers (`backbone`: EfficientNet's last blocks, SlowFast's last stage and
    # pooling), or all of it with train_full_backbone.
    for parameter in network.base.parameters():
        parameter.requires_grad = False
    return network, network.base if config.train_full_backbone else network.backbone

def check_scheduler(config: TrainConfig, model: ModelSource) -> None:
    """An unknown scheduler name fails here, before any clip is read, instead of when Lightning
    builds the optimiser after the frames are cached."""
    from kifaru.train.module import scheduler_class

    if config.scheduler_config is None:
        return
    if config.scheduler_config == "default":
        name = model.hyper_parameters.get("scheduler")
        where = f"checkpoint {model.checkpoint_path}: hyper_parameters.scheduler (scheduler_config 'default' uses it; give a scheduler_config to choose another)"
    else:
        name = config.scheduler_config.scheduler
        where = "scheduler_config.scheduler"
    if name is not None:
        try:
            scheduler_class(str(name))
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None

def hyper_parameters_of(config: TrainConfig, model: ModelSource, species: list[str], loader: VideoLoaderConfig) -> dict[str, Any]:
    """zamba's hparams (lr, scheduler, scheduler_params, species, model_class, num_frames or
    SlowFast's head fields) plus the loader config and, for a new backbone, its name."""
    hparams = {k: v for k, v in model.hyper_parameters.items() if k not in ("video_loader_config",)}
    scheduler = config.scheduler_config
    if scheduler == "default":
        scheduler_name, scheduler_params = hparams.get("scheduler"), hparams.get("scheduler_params")
    elif scheduler is None:
        scheduler_name, scheduler_params = None, None
    else:
        scheduler_name, scheduler_params = scheduler.scheduler, scheduler.scheduler_params
    hparams.update(
        lr=float(config.lr if config.lr is not None else hparams.get("lr", 1e-3)),
        scheduler=scheduler_name,
        scheduler_params=scheduler_params,
        species=list(species),
        model_class=model.model_class,
        video_loader_config=loader.model_dump(mode="json", exclude={"cache_dir", "cleanup_cache"}),
    )
    if config.backbone is not None:
        hparams["backbone_name"] = config.backbone
    return hparams
