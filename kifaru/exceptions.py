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


OFFLINE_HINT = (
    "If this machine cannot reach it, download the file on a machine that can and pass "
    "the local copy instead."
)


class DownloadError(KifaruError):
    """A file could not be fetched. ``url`` names it, ``reason`` says why, ``hint`` what to do."""

    def __init__(self, url: str, reason: str, hint: str | None = OFFLINE_HINT) -> None:
        self.url = url
        self.reason = reason
        self.hint = hint
        message = f"cannot download {url}: {reason}"
        super().__init__(f"{message}. {hint}" if hint else message)


class IntegrityError(KifaruError):
    """A file's checksum is not the expected one: it is damaged, truncated, or a different file.

    ``what`` names the checksum: sha256 (the default), or e.g. the S3 ETag (an MD5) of a download.
    """

    def __init__(
        self, path: str | Path, expected: str, actual: str, hint: str | None = None, what: str = "sha256"
    ) -> None:
        self.path = str(path)
        self.expected = expected
        self.actual = actual
        self.what = what
        hint = hint or "The copy was deleted; try again, and if it fails again the source has changed."
        super().__init__(f"{self.path}: {what} is {actual}, expected {expected}. {hint}")


class WeightsNotFoundError(KifaruError):
    """A model's weights are not where they were looked for (and may not be fetched)."""

    def __init__(self, model: str, reason: str) -> None:
        self.model = model
        super().__init__(f"weights of model '{model}': {reason}")


class CheckpointError(KifaruError):
    """A model checkpoint cannot be used; the message names the file, what is wrong and what to do."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"checkpoint {self.path}: {reason}")


class PartialDecodeWarning(UserWarning):
    """A clip decoded only partway; the frames that really exist are returned."""


class FrameSelectionWarning(UserWarning):
    """Frame selection did something other than what the config asks, where zamba would fail."""
