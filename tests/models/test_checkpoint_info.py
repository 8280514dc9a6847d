"""Reading a checkpoint's description without PyTorch, and falling back to PyTorch when needed."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest
import torch

from kifaru.exceptions import CheckpointError
from kifaru.models.checkpoint import read_checkpoint
from kifaru.models.checkpoint_info import read_checkpoint_info
from tests.models.tiny_model import SPECIES, write_tiny_checkpoint


def test_the_description_matches_a_full_read_and_holds_no_weights(tmp_path):
    path = write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    info = read_checkpoint_info(path)
    full = read_checkpoint(path)
    assert (info.model_class, info.species, info.hyper_parameters) == (full.model_class, full.species, full.hyper_parameters)
    assert info.species == SPECIES and info.state_dict == {}


def test_it_is_read_without_importing_pytorch(tmp_path):
    path = write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    code = f"import sys; from kifaru.models.checkpoint_info import read_checkpoint_info; i = read_checkpoint_info({str(path)!r}); print(i.model_class, 'torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == ["TinyVideoNet", "False"]


def test_lightning_hyper_parameters_and_the_old_format(tmp_path, lightning_attribute_dict):
    hparams = lightning_attribute_dict(model_class="TinyVideoNet", species=["a", "b"], num_frames=4)
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": hparams, "epoch": 3}, tmp_path / "l.ckpt")
    torch.save({"state_dict": {}, "hyper_parameters": dict(hparams)}, tmp_path / "old.ckpt", _use_new_zipfile_serialization=False)
    lightning_attribute_dict.uninstall()  # as in kifaru's venv
    for name in ("l.ckpt", "old.ckpt"):
        info = read_checkpoint_info(tmp_path / name)
        assert info.species == ["a", "b"] and info.hyper_parameters["num_frames"] == 4 and type(info.hyper_parameters) is dict


def test_objects_that_could_run_code_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"state_dict": {}, "hyper_parameters": {"model_class": "X", "species": ["a"], "x": Evil()}}, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match="could run code"):
        read_checkpoint_info(tmp_path / "evil.ckpt")


def test_missing_and_damaged_files_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="nope.ckpt: no such file"):
        read_checkpoint_info(tmp_path / "nope.ckpt")
    path = write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    (tmp_path / "cut.ckpt").write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="cut.ckpt: a zip archive cut short at 500 bytes"):
        read_checkpoint_info(tmp_path / "cut.ckpt")
    (tmp_path / "plain.ckpt").write_bytes(pickle.dumps({"hyper_parameters": {}}))
    with pytest.raises(CheckpointError, match="plain.ckpt"):
        read_checkpoint_info(tmp_path / "plain.ckpt")
