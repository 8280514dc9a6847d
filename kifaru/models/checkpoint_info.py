"""What a video-model checkpoint describes (model class, species, hyper-parameters), read without PyTorch.

A torch checkpoint in the zip format (every file torch has written since 1.6) keeps its object
tree in ``data.pkl`` and each tensor in a separate entry. Reading only ``data.pkl``, with tensors
left as placeholders, gives the hyper-parameters in milliseconds and without importing PyTorch
(about 500 MB in every process that does). Only plain containers and the names torch itself
writes are accepted, so nothing from the file can run code; anything else, and the pre-1.6
format, is left to :func:`kifaru.models.checkpoint.read_checkpoint`.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from kifaru.exceptions import CheckpointError

# Lightning pickles hyper-parameters as its AttributeDict (a dict subclass): read as plain dicts.
ATTRIBUTE_DICTS = (
    "lightning_fabric.utilities.data.AttributeDict",
    "lightning.fabric.utilities.data.AttributeDict",
    "pytorch_lightning.utilities.parsing.AttributeDict",
)


@dataclass
class VideoModelCheckpoint:
    """What a checkpoint holds (``state_dict`` is empty when only its description was read)."""

    path: Path
    model_class: str
    species: list[str]
    state_dict: dict[str, Any]
    hyper_parameters: dict[str, Any] = field(default_factory=dict)

    def without_weights(self) -> "VideoModelCheckpoint":
        """The same description with no tensors, to keep around without holding the weights."""
        return replace(self, state_dict={})


def checked_checkpoint(path: Path, raw: Any) -> VideoModelCheckpoint:
    """The checkpoint a loaded object describes, or CheckpointError saying what is missing."""
    if not isinstance(raw, dict) or not isinstance(raw.get("state_dict"), dict):
        raise CheckpointError(path, "no 'state_dict' in it: not a zamba or kifaru video-model checkpoint")
    hparams = dict(raw.get("hyper_parameters") or {})
    for key in ("model_class", "species"):
        if key not in hparams:
            raise CheckpointError(path, f"its hyper_parameters have no '{key}': not a zamba or kifaru video-model checkpoint")
    species = hparams["species"]
    if not isinstance(species, (list, tuple)) or not species or not all(isinstance(s, str) for s in species):
        raise CheckpointError(path, f"hyper_parameters 'species' must be a non-empty list of names, not {species!r}")
    return VideoModelCheckpoint(path, str(hparams["model_class"]), list(species), raw["state_dict"], hparams)


class _Placeholder:
    """Stands for a tensor, storage or other torch object whose content is not needed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def _placeholder(*args: Any, **kwargs: Any) -> _Placeholder:
    return _Placeholder()


class _DescriptionUnpickler(pickle.Unpickler):
    def persistent_load(self, pid: Any) -> Any:
        return _Placeholder()  # a tensor's storage, kept in another entry of the zip

    def find_class(self, module: str, name: str) -> Any:
        if f"{module}.{name}" in ATTRIBUTE_DICTS:
            return dict
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name.startswith("_rebuild_"):
            return _placeholder
        if module == "torch":  # storage types, dtypes, Size: only ever a placeholder here
            return _Placeholder
        raise pickle.UnpicklingError(f"{module}.{name} is not read without PyTorch")


def read_checkpoint_info(path: Path) -> VideoModelCheckpoint:
    """The checkpoint's description with an empty state_dict, read without PyTorch when possible."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file; give the path of a .ckpt file (zamba's or kifaru's)")
    raw = _read_description(path)
    if raw is None:  # not the zip format, or objects only torch knows how to read
        from kifaru.models.checkpoint import read_checkpoint

        return read_checkpoint(path).without_weights()
    return checked_checkpoint(path, raw).without_weights()


def _read_description(path: Path) -> Optional[Any]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(names) != 1:
                return None
            with archive.open(names[0]) as handle:
                return _DescriptionUnpickler(handle).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, OSError, AttributeError, ValueError, TypeError):
        return None
