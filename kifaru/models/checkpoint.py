"""Video-model checkpoints in zamba's format: read, normalise, turn into a model, and write.

A checkpoint is a torch file: a full Lightning ``.ckpt`` or zamba's minimal form
``{state_dict, hyper_parameters, global_step, pytorch-lightning_version}``. ``hyper_parameters``
names the ``model_class`` and the ``species`` (the order of the outputs), plus ``num_frames`` for
TimeDistributedEfficientNet. kifaru writes its own checkpoints in the same form (plain dicts), so
each side reads the other's.

Reading never runs code from the file: it is loaded with ``weights_only=True``, Lightning's
``AttributeDict`` read as a plain dict. The model classes (how each is built and fed) are declared
in kifaru.models.model_classes.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn

from kifaru.exceptions import CheckpointError
from kifaru.models.checkpoint_info import ATTRIBUTE_DICTS, VideoModelCheckpoint, checked_checkpoint
from kifaru.models.model_classes import MODEL_CLASSES
from kifaru.models.model_classes import model_class as get_model_class

__all__ = ["VideoModelCheckpoint", "model_from_checkpoint", "read_checkpoint", "write_checkpoint"]

# What kifaru writes as "pytorch-lightning_version" (zamba's loader requires the key).
LIGHTNING_VERSION = "2.5.0"


# Lightning's AttributeDict read as a plain dict: checkpoints load without Lightning and
# without running code from the file.
_SAFE_GLOBALS = [(dict, name) for name in ATTRIBUTE_DICTS]


def read_checkpoint(path: Path, mmap: bool = True) -> VideoModelCheckpoint:
    """Load a checkpoint file and check it names a model class and its species.

    ``mmap``: the weights stay in the file's pages until used (cheap when only the description is
    wanted). False reads each tensor into its own memory: what :func:`model_from_checkpoint` needs
    to hand tensors over as it converts them, so the file's pages do not stay resident beside them."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file; give the path of a .ckpt file (zamba's or kifaru's)")
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            raw = _load(path, mmap)
    except pickle.UnpicklingError as error:
        refused = [line.strip() for line in str(error).splitlines() if "GLOBAL" in line]
        if not refused:  # not a pickle torch understands
            raise CheckpointError(path, _why_unreadable(path)) from error
        raise CheckpointError(
            path, f"it holds objects kifaru does not load from checkpoints, as they could run code ({refused[0]})"
        ) from error
    except Exception as error:  # not a torch file, truncated, ...
        raise CheckpointError(path, _why_unreadable(path)) from error
    return checked_checkpoint(path, raw)


def _why_unreadable(path: Path) -> str:
    """Why torch cannot read ``path``, in words, from what the file starts with. torch's own
    message is about its reader's internals: for bytes that are not a checkpoint at all it is a
    number read from them (a pickle memo key, e.g. ``KeyError: 174812789``)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as error:
        return f"the file cannot be read ({error.strerror or error})"
    if size == 0:
        return "the file is empty (0 bytes): not a PyTorch checkpoint; was its download or copy complete?"
    if head == b"PK\x03\x04":  # a zip archive: the format torch.save writes
        if not zipfile.is_zipfile(path):  # its table of contents, at the end, is missing
            return f"a zip archive cut short at {size} bytes (a PyTorch checkpoint is one); copy or download it again"
        with zipfile.ZipFile(path) as archive:
            if not any(name == "data.pkl" or name.endswith("/data.pkl") for name in archive.namelist()):
                return "a zip archive, but not a PyTorch checkpoint (no data.pkl in it); give the .ckpt file of a zamba or kifaru model"
        return f"a PyTorch checkpoint that PyTorch {torch.__version__} cannot read: damaged, or from a newer PyTorch; copy or download it again"
    if head[:1] == b"\x80":  # a pickle: torch's format before 1.6
        return f"an old-format PyTorch checkpoint (a pickle) that is damaged or cut short at {size} bytes; copy or download it again"
    return (
        "not a PyTorch checkpoint: neither the zip archive torch.save writes nor its older pickle format; "
        "give the .ckpt file of a zamba or kifaru model"
    )


def _load(path: Path, mmap: bool) -> Any:
    if not mmap:
        return torch.load(path, map_location="cpu", weights_only=True)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as error:
        if "mmap" not in str(error):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)  # the pre-2020 format


def normalize_keys(state_dict: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """The state dict with keys as ``expected`` names them: ``_orig_mod.`` segments (saved from a
    ``torch.compile``d model) dropped, and a missing leading ``model.`` added where that matches."""
    out = {}
    for key, value in state_dict.items():
        plain = key.replace("_orig_mod.", "")
        if plain not in expected and f"model.{plain}" in expected:
            plain = f"model.{plain}"
        out[plain] = value
    return out


def input_transform(model_class: str) -> Callable[[torch.Tensor], Any]:
    """The function that turns a batch of uint8 clips into ``model_class``'s input."""
    return get_model_class(model_class).to_input


def model_from_checkpoint(
    checkpoint: VideoModelCheckpoint, memory_format: Optional[torch.memory_format] = None, build_on: str = "meta"
) -> nn.Module:
    """The network with the checkpoint's weights, in eval mode. Every tensor must match.

    The network is built without memory (on PyTorch's meta device) and takes the checkpoint's own
    tensors, so the weights are never held twice: for EfficientNetV2-M that is 200 MB less at the
    peak. The model therefore shares its tensors with ``checkpoint.state_dict``. ``memory_format``
    (``torch.channels_last``): the 4-d weights are converted one at a time as they are handed over,
    each original freed (when the checkpoint was read with ``mmap=False``) before the next.
    ``build_on="cpu"`` builds the network for real first, its random initialisation drawing from
    PyTorch's generator as it always did: what training needs so that a seeded run draws the same
    random numbers after the model is loaded as before."""
    if checkpoint.model_class not in MODEL_CLASSES:
        raise CheckpointError(checkpoint.path, MODEL_CLASSES.unknown(checkpoint.model_class))
    try:
        with torch.device(build_on):
            model = get_model_class(checkpoint.model_class).build(checkpoint.hyper_parameters, len(checkpoint.species))
    except (ValueError, TypeError) as error:  # hyper_parameters a builder cannot use
        raise CheckpointError(checkpoint.path, f"its hyper_parameters do not describe a {checkpoint.model_class} ({error})") from error
    expected = model.state_dict()
    state = normalize_keys(checkpoint.state_dict, set(expected))
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", wrong_shape)):
        if keys:
            problems.append(f"{len(keys)} tensors {label} (first: {', '.join(keys[:3])})")
    if problems:
        raise CheckpointError(
            checkpoint.path,
            f"its weights do not fit a {checkpoint.model_class} with {len(checkpoint.species)} species: "
            + "; ".join(problems),
        )
    # The checkpoint's dict itself holds what is handed over (under the normalised names), so each
    # original is freed as soon as its replacement exists.
    checkpoint.state_dict.clear()
    checkpoint.state_dict.update(state)
    state = checkpoint.state_dict
    for key in state:
        # The network's own dtypes (a float16 checkpoint still predicts in float32, as with copy_).
        tensor = state[key].to(expected[key].dtype)
        if memory_format is not None and tensor.dim() == 4:
            tensor = tensor.contiguous(memory_format=memory_format)
        state[key] = tensor
    model.load_state_dict(state, assign=True)
    on_meta = [name for name, tensor in [*model.named_parameters(), *model.named_buffers()] if tensor.is_meta]
    if on_meta:  # a tensor the builder makes that no checkpoint holds (none of today's classes has one)
        raise CheckpointError(checkpoint.path, f"{checkpoint.model_class} has tensors no checkpoint holds: {', '.join(on_meta[:3])}")
    return model.eval()


def write_checkpoint(
    path: Path, model: nn.Module, model_class: str, species: list[str], hyper_parameters: Optional[dict] = None, global_step: int = 0
) -> None:
    """Save in zamba's minimal form (plain dicts: zamba and kifaru both read it)."""
    from kifaru.files import atomic_write

    hparams = {**(hyper_parameters or {}), "model_class": model_class, "species": list(species)}
    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": hparams,
        "global_step": global_step,
        "pytorch-lightning_version": LIGHTNING_VERSION,
    }
    with atomic_write(Path(path)) as out:
        torch.save(checkpoint, out)
