"""Reading video-model checkpoints: zamba's variants load, anything else fails naming the file."""

from __future__ import annotations

import os
import pickle
import zipfile

import pytest
import torch
from torch import nn

from kifaru.exceptions import CheckpointError
from kifaru.models import model_classes
from kifaru.models.checkpoint import model_from_checkpoint, normalize_keys, read_checkpoint, write_checkpoint


class TinyVideoModel(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Flatten(), nn.Linear(12, num_classes))

    def forward(self, x):
        return self.model(x)


@pytest.fixture
def tiny_class(monkeypatch):
    """A registered model class small enough to build in every test."""
    entry = model_classes.ModelClass("TinyVideoModel", lambda hparams, n: TinyVideoModel(n), lambda frames: frames.float())
    monkeypatch.setitem(model_classes.MODEL_CLASSES, entry.name, entry)
    return TinyVideoModel


def _save(path, state_dict, hyper_parameters, **extra):
    torch.save({"state_dict": state_dict, "hyper_parameters": hyper_parameters, **extra}, path)
    return path


def test_round_trip(tmp_path, tiny_class):
    model = tiny_class(3)
    path = tmp_path / "tiny.ckpt"
    write_checkpoint(path, model, "TinyVideoModel", ["a", "b", "c"], {"lr": 0.01})
    checkpoint = read_checkpoint(path)
    assert checkpoint.species == ["a", "b", "c"] and checkpoint.hyper_parameters["lr"] == 0.01
    loaded = model_from_checkpoint(checkpoint)
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(loaded(x), model(x))


class TinyConvModel(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))

    def forward(self, x):
        return self.model(x)


def test_the_model_takes_the_checkpoints_tensors_converting_4d_weights_to_channels_last(tmp_path, monkeypatch):
    entry = model_classes.ModelClass("TinyConvModel", lambda hparams, n: TinyConvModel(n), lambda frames: frames.float())
    monkeypatch.setitem(model_classes.MODEL_CLASSES, entry.name, entry)
    torch.manual_seed(0)
    original = TinyConvModel(2).eval()
    original.model[1].running_mean.normal_()  # a buffer that differs from a new network's
    path = tmp_path / "conv.ckpt"
    # float16 on disk: the network still gets float32, as copying into it gave.
    _save(path, {k: v.half() if v.is_floating_point() else v for k, v in original.state_dict().items()},
          {"model_class": "TinyConvModel", "species": ["a", "b"]})
    checkpoint = read_checkpoint(path, mmap=False)
    loaded = model_from_checkpoint(checkpoint, torch.channels_last)
    weight = loaded.model[0].weight
    assert weight.dtype == torch.float32 and weight.is_contiguous(memory_format=torch.channels_last)
    assert not weight.is_contiguous()  # converted, not only contiguous both ways
    # Taken over, not copied: the model's tensors are the checkpoint's (converted) ones.
    for key, tensor in loaded.state_dict().items():
        assert tensor.data_ptr() == checkpoint.state_dict[key].data_ptr(), key
    expected = {k: v.half().float() if v.is_floating_point() else v for k, v in original.state_dict().items()}
    for key, tensor in loaded.state_dict().items():
        torch.testing.assert_close(tensor, expected[key], rtol=0, atol=0)
    assert not any(t.is_meta for t in [*loaded.parameters(), *loaded.buffers()])
    assert not loaded.training


def test_compiled_and_unprefixed_keys_are_normalised(tmp_path, tiny_class):
    model = tiny_class(2)
    compiled = {k.replace("model.", "model._orig_mod."): v for k, v in model.state_dict().items()}
    unprefixed = {k.removeprefix("model."): v for k, v in model.state_dict().items()}
    for state in (compiled, unprefixed):
        path = _save(tmp_path / "variant.ckpt", state, {"model_class": "TinyVideoModel", "species": ["x", "y"]})
        loaded = model_from_checkpoint(read_checkpoint(path))
        torch.testing.assert_close(loaded.model[1].weight, model.model[1].weight)


def test_normalize_keys_leaves_matching_keys_alone():
    expected = {"model.a", "b"}
    state = {"model._orig_mod.a": 1, "_orig_mod.b": 2, "c": 3}
    assert normalize_keys(state, expected) == {"model.a": 1, "b": 2, "c": 3}


def test_lightning_attribute_dict_loads_without_lightning(tmp_path, tiny_class, lightning_attribute_dict):
    """zamba's checkpoints pickle hyper-parameters as Lightning's AttributeDict."""
    hparams = lightning_attribute_dict(model_class="TinyVideoModel", species=["cat"], lr=0.001)
    path = _save(tmp_path / "zamba.ckpt", tiny_class(1).state_dict(), hparams, global_step=7)
    lightning_attribute_dict.uninstall()  # as in kifaru's venv
    checkpoint = read_checkpoint(path)
    assert type(checkpoint.hyper_parameters) is dict and checkpoint.species == ["cat"]


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", r"the file is empty \(0 bytes\): not a PyTorch checkpoint"),
        (b"\x00" + os.urandom(1999), "not a PyTorch checkpoint: neither the zip archive torch.save writes nor its older pickle format"),
        # torch's own error for these bytes is "KeyError: 174812789", a pickle memo key read from them
        (b"j" + (174812789).to_bytes(4, "little") + b"junk" * 10, r"not a PyTorch checkpoint: .*; give the \.ckpt file of a zamba or kifaru model$"),
        ("cut-zip", "a zip archive cut short at 700 bytes \\(a PyTorch checkpoint is one\\); copy or download it again"),
        ("other-zip", r"a zip archive, but not a PyTorch checkpoint \(no data.pkl in it\)"),
        ("cut-pickle", "an old-format PyTorch checkpoint \\(a pickle\\) that is damaged or cut short at 40 bytes"),
        ("no-state-dict", "no 'state_dict'"),
        ("no-species", "have no 'species'"),
        ("exploit", "holds objects kifaru does not load"),
    ],
)
def test_unusable_files_fail_naming_the_file(tmp_path, content, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.ckpt"
    if content == "no-state-dict":
        torch.save({"weights": {}}, path)
    elif content == "no-species":
        _save(path, {}, {"model_class": "TimeDistributedEfficientNet"})
    elif content == "exploit":
        torch.save({"state_dict": {}, "hyper_parameters": _Exploit()}, path, pickle_module=pickle)
    elif content == "other-zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("zamba/__init__.py", "")
    elif content in ("cut-zip", "cut-pickle"):
        torch.save({"state_dict": {"w": torch.zeros(1000)}}, path, _use_new_zipfile_serialization=content == "cut-zip")
        path.write_bytes(path.read_bytes()[: 700 if content == "cut-zip" else 40])
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as raised:
        read_checkpoint(path)
    assert str(path) in str(raised.value)
    assert not (tmp_path / "pwned").exists()


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        read_checkpoint(tmp_path / "nope.ckpt")


def test_unknown_model_class_lists_the_known_ones(tmp_path):
    path = _save(tmp_path / "odd.ckpt", {}, {"model_class": "TimeDistributedEfficientNett", "species": ["a"]})
    with pytest.raises(CheckpointError, match="unknown model_class .*did you mean 'TimeDistributedEfficientNet'.*known model classes: .*TimeDistributedEfficientNet"):
        model_from_checkpoint(read_checkpoint(path))


def test_weights_that_do_not_fit_the_species_are_refused(tmp_path, tiny_class):
    path = _save(tmp_path / "mismatch.ckpt", tiny_class(5).state_dict(), {"model_class": "TinyVideoModel", "species": ["a", "b"]})
    with pytest.raises(CheckpointError, match=r"do not fit a TinyVideoModel with 2 species: 2 tensors of another shape \(first: model.1.bias"):
        model_from_checkpoint(read_checkpoint(path))
    state = tiny_class(2).state_dict()
    del state["model.1.bias"]
    path = _save(tmp_path / "partial.ckpt", state, {"model_class": "TinyVideoModel", "species": ["a", "b"]})
    with pytest.raises(CheckpointError, match=r"1 tensors missing \(first: model.1.bias\)"):
        model_from_checkpoint(read_checkpoint(path))


def test_hyper_parameters_a_model_cannot_use_are_refused_naming_the_file(tmp_path):
    path = _save(tmp_path / "odd.ckpt", {}, {"model_class": "TimeDistributedEfficientNet", "species": ["a"], "num_frames": "sixteen"})
    with pytest.raises(CheckpointError, match=r"odd.ckpt: its hyper_parameters do not describe a TimeDistributedEfficientNet"):
        model_from_checkpoint(read_checkpoint(path))


def test_checkpoints_in_the_old_torch_format_still_load(tmp_path, tiny_class):
    path = tmp_path / "legacy.ckpt"
    state = tiny_class(2).state_dict()
    torch.save({"state_dict": state, "hyper_parameters": {"model_class": "TinyVideoModel", "species": ["a", "b"]}}, path, _use_new_zipfile_serialization=False)
    model = model_from_checkpoint(read_checkpoint(path))
    assert torch.equal(model.state_dict()["model.1.weight"], state["model.1.weight"])


LIGHTNING_ZAMBA_LIKE = '''
import sys
import torch
import pytorch_lightning as pl
from torch import nn


class ZambaLikeModule(pl.LightningModule):
    """Saves its hyper-parameters and weights as zamba's LightningModules do."""

    def __init__(self, species, model_class="TinyVideoModel", lr=0.01):
        super().__init__()
        self.save_hyperparameters()
        self.model = nn.Sequential(nn.Flatten(), nn.Linear(12, len(species)))

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, _):
        x, y = batch
        loss = nn.functional.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 1, 0.5)}


torch.manual_seed(0)
x, y = torch.rand(8, 3, 4), torch.randint(0, 2, (8, 2)).float()
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
module = ZambaLikeModule(["cat", "dog"])
trainer = pl.Trainer(
    max_epochs=2, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
    default_root_dir=sys.argv[1],
    callbacks=[pl.callbacks.ModelCheckpoint(dirpath=sys.argv[1], monitor="train_loss"),
               pl.callbacks.EarlyStopping(monitor="train_loss", patience=3)],
)
trainer.fit(module, loader)
trainer.save_checkpoint(sys.argv[2])
torch.save(module(x[:2]).detach(), sys.argv[3])
'''


def test_a_checkpoint_written_by_a_lightning_trainer_loads_without_lightning(tmp_path, tiny_class):
    """Trainer.save_checkpoint's full form: optimizer, scheduler, loops and callback states beside
    the weights, hyper-parameters as Lightning's AttributeDict. Read here with Lightning hidden."""
    pytest.importorskip("pytorch_lightning")
    import subprocess
    import sys

    from kifaru.models.checkpoint_info import read_checkpoint_info

    script, path, expected = tmp_path / "train.py", tmp_path / "full.ckpt", tmp_path / "expected.pt"
    script.write_text(LIGHTNING_ZAMBA_LIKE)
    subprocess.run([sys.executable, str(script), str(tmp_path / "run"), str(path), str(expected)], check=True, capture_output=True)
    raw = torch.load(path, weights_only=False)
    assert {"optimizer_states", "lr_schedulers", "loops", "callbacks", "epoch"} <= set(raw)  # the full form

    hidden = {name: None for name in ("pytorch_lightning", "lightning_fabric", "lightning")}
    with pytest.MonkeyPatch.context() as patch:
        for name in list(sys.modules):
            if name.split(".")[0] in hidden:
                patch.delitem(sys.modules, name)
        for name in hidden:
            patch.setitem(sys.modules, name, None)  # importing it fails, as in a venv without it
        info = read_checkpoint_info(path)
        checkpoint = read_checkpoint(path)
    assert (info.model_class, info.species, info.hyper_parameters["lr"]) == ("TinyVideoModel", ["cat", "dog"], 0.01)
    assert type(checkpoint.hyper_parameters) is dict and checkpoint.species == ["cat", "dog"]
    model = model_from_checkpoint(checkpoint).eval()
    torch.manual_seed(0)
    x = torch.rand(8, 3, 4)  # the script's first draw
    with torch.no_grad():
        assert torch.allclose(model(x[:2]), torch.load(expected))
