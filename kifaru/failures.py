"""Why a file has no result: the stage that failed and the reason, in words.

Shared by ``detect`` and ``predict``, so that a bad file is described the same way everywhere and
never stops a run: every exception raised while reading one file becomes a failure record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

from kifaru.exceptions import KifaruError, MediaNotFoundError

# Failure stages, as written in failure records.
STAGE_FILE = "file"  # the path is missing, a folder, or not a video
STAGE_DECODE = "decode"  # the file could not be opened or decoded
STAGE_FRAMES = "frames"  # decoded, but the frames the model needs were not there
STAGE_WORKER = "worker"  # decoding it crashed the worker process
STAGE_MODEL = "model"  # the model could not run on the clip's frames


@dataclass(frozen=True)
class ReadFailure:
    stage: str
    reason: str  # without the path

    def message(self, path: Union[str, Path]) -> str:
        return f"{path}: {self.reason}"


def read_failure(error: Exception) -> ReadFailure:
    """The failure record for an exception raised while reading one file."""
    if isinstance(error, MediaNotFoundError):
        return ReadFailure(STAGE_FILE, error.reason)
    if isinstance(error, KifaruError):
        return ReadFailure(STAGE_DECODE, getattr(error, "reason", str(error)))
    # A decoder's own exception: recorded with its type, since nothing more is known.
    return ReadFailure(STAGE_DECODE, f"unexpected {type(error).__name__}: {error}")
