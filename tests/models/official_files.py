"""Stand-ins for zamba's official checkpoints on the local HTTP test server (tests/http_server.py),
laid out as in DrivenData's buckets and answered with S3-style ETags.

The checkpoints are tiny (a Linear layer, plus padding bytes where a test needs several MiB), with
the registry's model_class and species: the structural check reads the checkpoint but does not
build the network.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from kifaru.models.checkpoint import write_checkpoint
from kifaru.models.registry import ClassifierEntry, VideoModelEntry
from kifaru.models.s3 import MODELS_URL_ENV

MIB = 1 << 20
PREFIX = "zamba_official_models"


class _Tiny(nn.Module):
    def __init__(self, outputs: int, padding: int, seed: int) -> None:
        super().__init__()
        self.head = nn.Linear(4, outputs)
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("padding", torch.randint(0, 256, (padding,), dtype=torch.uint8, generator=generator))


def tiny_checkpoint(
    path: Path,
    entry: VideoModelEntry,
    *,
    species: Optional[Sequence[str]] = None,
    model_class: Optional[str] = None,
    padding: int = 0,
    seed: int = 0,
) -> bytes:
    """Write a small checkpoint claiming to be ``entry``'s (or with other species/model_class);
    return its bytes. ``seed`` makes two versions of "the same" file differ."""
    species = list(entry.species if species is None else species)
    model = _Tiny(len(species), padding, seed)
    write_checkpoint(path, model, model_class or entry.model_class, species, {"num_frames": entry.num_frames})
    return Path(path).read_bytes()


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def multipart_etag(data: bytes, part_size: int) -> str:
    """S3's ETag for a multipart upload in ``part_size``-byte parts (computed here independently)."""
    parts = [data[i : i + part_size] for i in range(0, len(data), part_size)]
    combined = hashlib.md5(b"".join(hashlib.md5(part).digest() for part in parts)).hexdigest()
    return f'"{combined}-{len(parts)}"'


def publish(server, entry: ClassifierEntry, data: bytes, etag: Optional[str] = "md5") -> str:
    """Serve ``data`` as ``entry``'s checkpoint under ``/zamba_official_models/`` with ``etag``
    ("md5" for the plain MD5 ETag, ``None`` for none); return its URL."""
    url = server.add(f"{PREFIX}/{entry.weights_filename}", data)
    path = f"/{PREFIX}/{entry.weights_filename}"
    if etag == "md5":
        etag = md5_etag(data)
    if etag is None:
        server.etags.pop(path, None)
    else:
        server.etags[path] = etag
    return url


def use_mirror(server, monkeypatch) -> str:
    """Point KIFARU_MODELS_URL at the server's bucket folder; return that folder's URL."""
    folder = f"{server.url}/{PREFIX}"
    monkeypatch.setenv(MODELS_URL_ENV, folder)
    return folder


def checkpoint_requests(server) -> list[dict]:
    return [r for r in server.requests if r["path"].endswith(".ckpt")]


# The ways a user's machine has an official checkpoint, as the offline hint names them.
OFFICIAL_ROUTES = ("cache", "env", "download")


def provide_official_checkpoint(user, entry: VideoModelEntry, data: bytes, route: str) -> Path:
    """Make ``data`` ``entry``'s checkpoint for ``user`` (a tests.new_user.NewUser) by ``route``:
    copied into the model cache, named by the model's environment variable, or served on the
    bucket mirror. Returns the path the checkpoint is used from."""
    if route == "cache":
        path = user.model_cache / entry.weights_filename
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        return path
    if route == "env":
        path = user.home / "Downloads" / entry.weights_filename
        path.parent.mkdir()
        path.write_bytes(data)
        user.monkeypatch.setenv(entry.weights_env_var, str(path))
        return path
    if route == "download":
        user.serve_official_checkpoint(entry.name, data)
        return user.model_cache / entry.weights_filename
    raise ValueError(f"unknown route {route!r}; routes: {', '.join(OFFICIAL_ROUTES)}")


def assert_first_use_notices(notices: list, entry: VideoModelEntry, route: str, size: int) -> None:
    """What kifaru.notices said while ``entry``'s checkpoint was found by ``route``: its download
    and its progress up to ``size`` bytes when it was not here; nothing when it was."""
    if route != "download":
        assert notices == []
        return
    said = [n.message for n in notices if n.download is None]
    assert len(said) == 1 and said[0].startswith(f"{entry.name}: not in the model cache yet: downloading {entry.weights_filename} from ")
    progress = [(n.done, n.total) for n in notices if n.download == entry.name]
    assert progress[-1] == (size, size) and all(total == size for _, total in progress)
