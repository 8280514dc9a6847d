"""Typed exceptions raised by the kifaru library.

The CLI (``kifaru.cli``) turns these into messages and exit codes in one place; library code never
prints or exits.
"""

from __future__ import annotations

from pathlib import Path


class KifaruError(Exception):
    """Base class of every error kifaru raises on purpose."""


class ConfigError(KifaruError, ValueError):
    """A configuration file or value is invalid; the message names the field and the fix."""


class UnsupportedOptionError(ConfigError):
    """A valid config option that this version of kifaru cannot carry out yet."""


class MediaError(KifaruError):
    """A media file cannot be used. ``path`` names it and ``reason`` says why, in words."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class MediaNotFoundError(MediaError, FileNotFoundError):
    """The file does not exist (or is a folder)."""


class EmptyMediaError(MediaError):
    """The file exists but holds no bytes."""


class NotAVideoError(MediaError):
    """FFmpeg cannot open the file as a container, or it has no video stream (e.g. audio only)."""


class DecodeError(MediaError):
    """The container opened but not a single frame could be decoded."""


class PartialDecodeWarning(UserWarning):
    """A clip decoded only partway; the frames that really exist are returned."""
