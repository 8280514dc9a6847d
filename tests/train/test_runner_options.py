"""train_model's options beyond a plain run: the learning-rate finder, schedulers by name, and
fine-tuning a SlowFast checkpoint (issue 5)."""

import numpy as np
import pytest
import torch
import yaml
from pytorch_lightning.tuner import Tuner

from kifaru.config import VideoLoaderConfig
from kifaru.exceptions import ConfigError
from kifaru.models.checkpoint import model_from_checkpoint, read_checkpoint, write_checkpoint
from kifaru.models.time_distributed import TimeDistributedEfficientNet
from kifaru.train.module import TrainWarning, VideoClassificationModule
from kifaru.train.runner import train_model
from kifaru.train.synthetic import write_training_set
from tests.train.test_runner import FRAMES, config, loader, rows

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def clip_set(tmp_path_factory):
    """test_runner's made-up set: 5 clips of each of 3 classes, FRAMES frames each."""
    folder = tmp_path_factory.mktemp("clips")
    return folder, write_training_set(folder, clips_per_class=5, n_frames=FRAMES)


def lr_per_epoch(version_dir, column="lr-Adam"):
    """The learning rate LearningRateMonitor logged at the start of each epoch (its rows have a
    step, no epoch; the csv logger writes them in order)."""
    return [float(r[column]) for r in rows(version_dir / "metrics.csv") if r.get(column)]


# -- the learning-rate finder -------------------------------------------------------------------


def test_auto_lr_find_trains_at_the_rate_it_found_and_leaves_no_temporary_checkpoint(clip_set, tmp_path, monkeypatch):
    folder, labels = clip_set
    monkeypatch.chdir(tmp_path)
    finders = []
    lr_find = Tuner.lr_find

    def recording_lr_find(self, *args, **kwargs):
        # 20 steps instead of 100, for time (a suggestion needs 12): 7 epochs of 3 batches, while
        # training has max_epochs 1.
        finders.append(lr_find(self, *args, **{**kwargs, "num_training": 20}))
        return finders[-1]

    monkeypatch.setattr(Tuner, "lr_find", recording_lr_find)
    run = config(tmp_path, labels, folder, auto_lr_find=True, early_stopping_config=None, backbone_finetune_config=None)
    report = train_model(run, loader(tmp_path))

    assert len(finders) == 1
    found = finders[0].suggestion()
    assert found is not None and found != 1e-3  # 1e-3: the rate without the finder
    configuration = yaml.safe_load((report.version_dir / "train_configuration.yaml").read_text())
    assert configuration["starting_learning_rate"] == pytest.approx(found)
    assert read_checkpoint(report.checkpoint).hyper_parameters["lr"] == pytest.approx(found)
    # The optimiser trained at that rate (no scheduler here to change it).
    assert lr_per_epoch(report.version_dir) == [pytest.approx(found)]
    assert report.epochs == 1 and "val_macro_f1" in report.val_metrics  # training ran as asked after the search
    last = torch.load(report.version_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(found)
    # Lightning's .lr_find_<uuid>.ckpt (written in default_root_dir, the version folder) is gone.
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".lr_find")]


def test_auto_lr_find_without_a_suggestion_warns_and_keeps_the_rate(clip_set, tmp_path, monkeypatch):
    folder, labels = clip_set
    lr_find = Tuner.lr_find
    # 5 steps: fewer than the 12 Lightning needs to suggest a rate.
    monkeypatch.setattr(Tuner, "lr_find", lambda self, *args, **kwargs: lr_find(self, *args, **{**kwargs, "num_training": 5}))
    run = config(tmp_path, labels, folder, auto_lr_find=True, early_stopping_config=None, backbone_finetune_config=None)
    with pytest.warns(TrainWarning, match="auto_lr_find found no learning rate.*training at lr 0.001"):
        report = train_model(run, loader(tmp_path))
    assert read_checkpoint(report.checkpoint).hyper_parameters["lr"] == 1e-3


# -- schedulers ---------------------------------------------------------------------------------


def test_a_multistep_scheduler_drops_the_rate_after_its_milestone(clip_set, tmp_path):
    folder, labels = clip_set
    # zamba's official configs carry verbose: true, which PyTorch's schedulers no longer take.
    scheduler = {"scheduler": "MultiStepLR", "scheduler_params": {"milestones": [1], "gamma": 0.1, "verbose": True}}
    run = config(tmp_path, labels, folder, max_epochs=2, early_stopping_config=None, scheduler_config=scheduler,
                 backbone_finetune_config={"unfreeze_backbone_at_epoch": 5})  # fmt: skip
    with pytest.warns(TrainWarning, match="MultiStepLR does not take verbose: ignored"):
        report = train_model(run, loader(tmp_path))
    assert lr_per_epoch(report.version_dir) == [pytest.approx(1e-3), pytest.approx(1e-4)]
    assert list(report.version_dir.glob("events.out.tfevents.*"))  # the same values go to TensorBoard
    hparams = read_checkpoint(report.checkpoint).hyper_parameters
    assert hparams["scheduler"] == "MultiStepLR" and hparams["scheduler_params"]["milestones"] == [1]


def test_reduce_lr_on_plateau_steps_on_the_validation_metric(clip_set, tmp_path):
    folder, labels = clip_set
    # A 100-unit improvement needed: the first epoch sets the best val_loss, the second cannot beat it.
    plateau = {"scheduler": "ReduceLROnPlateau",
               "scheduler_params": {"patience": 0, "factor": 0.1, "threshold": 100, "threshold_mode": "abs"}}  # fmt: skip
    run = config(tmp_path, labels, folder, max_epochs=3, early_stopping_config=None, scheduler_config=plateau,
                 backbone_finetune_config=None)  # fmt: skip
    report = train_model(run, loader(tmp_path))
    assert lr_per_epoch(report.version_dir) == [pytest.approx(1e-3), pytest.approx(1e-3), pytest.approx(1e-4)]


@pytest.mark.parametrize("monitor, params, mode", [
    ("val_macro_f1", {}, "max"),  # min, its default, would cut the rate at every improvement
    ("val_loss", {}, "min"),
    ("val_macro_f1", {"mode": "min"}, "min"),  # a mode given is kept
])  # fmt: skip
def test_reduce_lr_on_plateau_follows_the_monitored_metric(monitor, params, mode):
    hparams = {"lr": 0.01, "scheduler": "ReduceLROnPlateau", "scheduler_params": params}
    module = VideoClassificationModule(torch.nn.Linear(2, 3), lambda x: x, ["a", "b", "c"], hparams, monitor_for_plateau=monitor)
    scheduler = module.configure_optimizers()["lr_scheduler"]
    assert scheduler["monitor"] == monitor and scheduler["scheduler"].mode == mode


def test_reduce_lr_on_plateau_without_val_clips_is_an_error_before_training(clip_set, tmp_path):
    folder, labels = clip_set
    train_only = tmp_path / "train_only.csv"
    lines = labels.read_text().splitlines()
    train_only.write_text("\n".join([lines[0] + ",split"] + [line + ",train" for line in lines[1:]]) + "\n")
    run = config(tmp_path, train_only, folder, early_stopping_config=None, scheduler_config={"scheduler": "ReduceLROnPlateau"})
    with pytest.raises(ConfigError, match="ReduceLROnPlateau .*no clip is in the val split"):
        train_model(run, loader(tmp_path))
    assert not (tmp_path / "out").exists()


def test_an_unknown_scheduler_is_an_error_naming_the_field_before_any_clip_is_read(clip_set, tmp_path):
    folder, labels = clip_set
    run = config(tmp_path, labels, folder, scheduler_config={"scheduler": "MultiStepLRR"})
    with pytest.raises(ConfigError, match=r"scheduler_config\.scheduler: unknown scheduler 'MultiStepLRR' \(did you mean 'MultiStepLR'\?\)"):
        train_model(run, loader(tmp_path))
    assert not (tmp_path / "out").exists() and not (tmp_path / "frames").exists()


def _checkpoint_with_scheduler(tmp_path, scheduler, scheduler_params):
    torch.manual_seed(3)
    species = ["blue_disc", "green_bar", "red_square"]
    network = TimeDistributedEfficientNet(len(species), num_frames=FRAMES, backbone_name="test_efficientnet")
    path = tmp_path / "source.ckpt"
    hparams = {"num_frames": FRAMES, "backbone_name": "test_efficientnet", "lr": 0.002, "scheduler": scheduler, "scheduler_params": scheduler_params}
    write_checkpoint(path, network, "TimeDistributedEfficientNet", species, hparams)
    return path


def _fine_tune(tmp_path, labels, folder, checkpoint, **fields):
    values = dict(from_scratch=False, backbone=None, checkpoint=checkpoint, max_epochs=2, early_stopping_config=None,
                  backbone_finetune_config={"unfreeze_backbone_at_epoch": 5})  # fmt: skip
    return config(tmp_path, labels, folder, **{**values, **fields})


def test_the_default_scheduler_config_takes_the_checkpoints_scheduler(clip_set, tmp_path):
    folder, labels = clip_set
    # As zamba's official slowfast hparams: MultiStepLR with the verbose that torch no longer takes.
    params = {"milestones": [1], "gamma": 0.5, "verbose": True}
    source = _checkpoint_with_scheduler(tmp_path, "MultiStepLR", params)
    with pytest.warns(TrainWarning, match="verbose: ignored"):
        report = train_model(_fine_tune(tmp_path, labels, folder, source), loader(tmp_path))
    assert lr_per_epoch(report.version_dir) == [pytest.approx(0.002), pytest.approx(0.001)]
    hparams = read_checkpoint(report.checkpoint).hyper_parameters
    assert hparams["scheduler"] == "MultiStepLR" and hparams["scheduler_params"] == params
    recorded = yaml.safe_load((report.version_dir / "train_configuration.yaml").read_text())["train_config"]
    assert recorded["scheduler_config"] == {"scheduler": "MultiStepLR", "scheduler_params": params}


def test_no_scheduler_config_trains_at_a_constant_rate_whatever_the_checkpoint_had(clip_set, tmp_path):
    folder, labels = clip_set
    source = _checkpoint_with_scheduler(tmp_path, "MultiStepLR", {"milestones": [1], "gamma": 0.5})
    report = train_model(_fine_tune(tmp_path, labels, folder, source, scheduler_config=None), loader(tmp_path))
    assert lr_per_epoch(report.version_dir) == [pytest.approx(0.002), pytest.approx(0.002)]
    assert read_checkpoint(report.checkpoint).hyper_parameters["scheduler"] is None


def test_an_unknown_scheduler_in_the_checkpoint_is_an_error_naming_the_checkpoint(clip_set, tmp_path):
    folder, labels = clip_set
    source = _checkpoint_with_scheduler(tmp_path, "StepLRR", {"step_size": 1})
    with pytest.raises(ConfigError, match=r"source\.ckpt: hyper_parameters\.scheduler .*unknown scheduler 'StepLRR' \(did you mean 'StepLR'\?\)"):
        train_model(_fine_tune(tmp_path, labels, folder, source), loader(tmp_path))


# -- fine-tuning SlowFast -----------------------------------------------------------------------

# zamba's official slowfast hyper-parameters (its hparams.yaml), scheduler left out.
SLOWFAST_HPARAMS = {"backbone_mode": "train", "head_dropout_rate": None, "head_hidden_layer_sizes": None, "lr": 0.001,
                    "output_with_global_average": True, "post_backbone_dropout": 0.0, "scheduler": None, "scheduler_params": None}  # fmt: skip


@pytest.fixture(scope="module")
def slowfast_checkpoint(tmp_path_factory):
    """A random-weight SlowFast of two species the labels lack, and its weights."""
    from kifaru.models.slowfast import SlowFast
    from tests.models.random_checkpoint import random_state_dict

    network = SlowFast(num_classes=2)
    network.load_state_dict(random_state_dict(network, seed=11))
    path = tmp_path_factory.mktemp("slowfast") / "source.ckpt"
    write_checkpoint(path, network, "SlowFast", ["elephant", "gorilla"], SLOWFAST_HPARAMS)
    parameters = {name: p.detach().clone() for name, p in network.named_parameters(remove_duplicate=False)}
    return path, parameters


@pytest.mark.parametrize("species, kept", [(["elephant", "gorilla"], True), (["blue_disc", "red_square"], False)])
@pytest.mark.parametrize("full_backbone", [False, True])
def test_a_slowfast_network_is_frozen_before_its_head_as_zambas(slowfast_checkpoint, tmp_path, species, kept, full_backbone):
    """zamba's SlowFast freezes all of `base` (kept head or new one); BackboneFinetuning then
    unfreezes `backbone`, the last stage and pooling (base.blocks[-2:])."""
    from kifaru.train.model_setup import ModelSource, build_network

    path, _ = slowfast_checkpoint
    run = config(tmp_path, tmp_path / "labels.csv", tmp_path, from_scratch=False, backbone=None, checkpoint=path, train_full_backbone=full_backbone)
    network, finetuned = build_network(run, ModelSource("SlowFast", ["elephant", "gorilla"], dict(SLOWFAST_HPARAMS), path), species, kept)
    trainable = sorted(name for name, p in network.named_parameters() if p.requires_grad)
    assert trainable == ["head.proj.bias", "head.proj.weight"]
    assert finetuned is (network.base if full_backbone else network.backbone)
    assert list(network.backbone) == list(network.base.blocks[-2:])


def test_fine_tuning_a_slowfast_checkpoint_on_new_species(slowfast_checkpoint, tmp_path):
    from kifaru.models.slowfast import MIN_SIDE, frames_to_input

    source, original = slowfast_checkpoint
    folder = tmp_path / "clips"
    write_training_set(folder, clips_per_class=1, classes=("red_square", "blue_disc"), n_frames=32)
    # Two clips, the second with both species (two outputs, not one for a binary task), all trained on.
    labels = folder / "split.csv"
    labels.write_text("filepath,label,split\nred_square_000.mp4,red_square,train\nblue_disc_000.mp4,blue_disc,train\n"
                      "blue_disc_000.mp4,red_square,train\n")  # fmt: skip
    frames = VideoLoaderConfig(total_frames=32, ensure_total_frames=True, model_input_height=MIN_SIDE, model_input_width=MIN_SIDE,
                               cache_dir=tmp_path / "frames")  # fmt: skip
    run = config(tmp_path, labels, folder, from_scratch=False, backbone=None, checkpoint=source, batch_size=1, loggers=["csv"],
                 early_stopping_config=None, backbone_finetune_config={"unfreeze_backbone_at_epoch": 5})  # fmt: skip
    report = train_model(run, frames)

    assert report.checkpoint.name == "slowfast.ckpt"  # as zamba: the model class's default name
    trained = read_checkpoint(report.checkpoint)
    assert trained.model_class == "SlowFast" and trained.species == ["blue_disc", "red_square"]
    assert {k: trained.hyper_parameters[k] for k in SLOWFAST_HPARAMS if k != "lr"} == {k: v for k, v in SLOWFAST_HPARAMS.items() if k != "lr"}
    assert trained.state_dict["head.proj.weight"].shape == (2, original["head.proj.weight"].shape[1])
    # Everything before the head was frozen all along: the checkpoint's parameters, unchanged.
    before_head = [name for name in original if not name.startswith("head.")]
    assert before_head and all(torch.equal(trained.state_dict[name], original[name]) for name in before_head)
    # Only the head's two tensors were in the optimiser.
    last = torch.load(report.version_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert len(last["optimizer_states"][0]["state"]) == 2

    network = model_from_checkpoint(trained)
    clip = torch.from_numpy(np.stack([np.full((MIN_SIDE, MIN_SIDE, 3), 40 * t % 255, np.uint8) for t in range(32)]))
    with torch.no_grad():
        probabilities = torch.sigmoid(network(frames_to_input(clip[None])))
    assert probabilities.shape == (1, 2) and torch.isfinite(probabilities).all()
