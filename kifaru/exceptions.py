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


class NotAPhotoError(MediaError):
    """The file is not an image kifaru can read, cannot be decoded whole, or is too large."""


class DecodeError(MediaError):
    """The container opened but not a single frame could be decoded."""


OFFLINE_HINT = (
    "If this machine cannot reach it, download the file on a machine that can and pass "
    "the local copy instead."
)


class NoUsableInputError(KifaruError):
    """Not one of a run's input files could be used (each has a failure record saying why): the
    run cannot go on, and it is the inputs, not the command line, that need looking at."""


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


class OnnxExportError(KifaruError, RuntimeError):
    """A network's ONNX export cannot be used (its outputs differ from PyTorch's, or the export
    failed); the caller falls back to PyTorch with this message as the reason."""


class PartialDecodeWarning(UserWarning):
    """A clip decoded only partway; the frames that really exist are returned."""


class FrameSelectionWarning(UserWarning):
    """Frame selection did something other than what the config asks, where zamba would fail."""


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C (SIGINT) or SIGTERM before every file had a result.

    A KeyboardInterrupt, so that no ``except Exception`` around one file's work records it as that
    file's failure. The CLI raises it on SIGTERM (``signal_name``) as Python raises
    KeyboardInterrupt on Ctrl-C; detect and predict raise it again once they have written the
    outputs of the files finished: ``done`` of ``total`` files, ``outputs`` the files written
    (empty when nothing is saved).
    """

    def __init__(
        self,
        signal_name: str = "SIGINT",
        done: int | None = None,
        total: int | None = None,
        outputs: dict[str, Path] | None = None,
    ) -> None:
        self.signal_name = signal_name
        self.done = done
        self.total = total
        self.outputs = dict(outputs or {})
        super().__init__(signal_name)

    @classmethod
    def after(cls, interrupt: BaseException, done: int, total: int, outputs: dict[str, Path]) -> "Interrupted":
        """The interrupt of a run that had finished ``done`` of ``total`` files and wrote ``outputs``."""
        return cls(getattr(interrupt, "signal_name", "SIGINT"), done, total, outputs)


class TrainingInterrupted(Interrupted):
    """Training stopped by Ctrl-C or SIGTERM. ``last_checkpoint`` (``version_dir``/checkpoints/
    last.ckpt, written when it stopped) continues it as ``resume_from``; None when it stopped
    before its first training step, which leaves no version folder (``version_dir`` None too).
    ``epochs`` is the number of epochs it finished."""

    def __init__(
        self, signal_name: str, version_dir: Path | None, last_checkpoint: Path | None, epochs: int = 0
    ) -> None:
        super().__init__(signal_name, outputs={"last_checkpoint": last_checkpoint} if last_checkpoint else None)
        self.version_dir = version_dir
        self.last_checkpoint = last_checkpoint
        self.epochs = epochs
