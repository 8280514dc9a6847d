"""MegaDetector's own validator (megadetector-utils' ``validate_batch_results``) for tests.

megadetector-utils is not in kifaru's venv: it requires ``opencv-python`` (the GUI build, with Qt
and a link to the system's libGL), which installs into the same ``cv2`` folder as kifaru's
``opencv-python-headless`` and replaces its binary; uninstalling either then breaks both. So the
validator runs

- in a Python that ``MEGADETECTOR_PYTHON`` names, else in the project's ``.venv-megadetector``
  (which the README's test command makes: ``python3 -m venv .venv-megadetector &&
  .venv-megadetector/bin/pip install megadetector-utils``), as a subprocess;
- else in this process, when megadetector-utils is importable here;
- else the test is skipped.

What the validator checks, and what it does not, is written down in
``tests/helpers/megadetector_validator.md``; ``tests/detection/md_format.py`` re-implements it
with the format's stricter rules, and runs everywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Optional

import pytest

from tests.helpers import run_megadetector_validator

MEGADETECTOR_PYTHON_ENV = "MEGADETECTOR_PYTHON"
VALIDATOR_MODULE = "megadetector.postprocessing.validate_batch_results"
PROJECT_VENV_PYTHON = Path(__file__).resolve().parents[2] / ".venv-megadetector" / "bin" / "python"
SETUP_HINT = (
    "python3 -m venv .venv-megadetector && .venv-megadetector/bin/pip install megadetector-utils in the project, "
    f"or {MEGADETECTOR_PYTHON_ENV}=/path/to/a/python/with/it"
)
SUBPROCESS_TIMEOUT_S = 300


def megadetector_validation(path: Path, image_root: Optional[Path] = None) -> dict[str, Any]:
    """What the validator says of the results file ``path``: ``errors`` (at most one: it stops
    at the first), ``warnings``, and per-category counts of the detections (``detection_counts``)
    and classifications (``classification_counts``) it went through. ``image_root``: every file
    named must exist there (relative paths joined to it).

    Skips the test when no validator is at hand; a ``MEGADETECTOR_PYTHON`` that cannot run it
    fails the test (it was asked for).
    """
    results = str(Path(path).resolve())  # the validator takes a str (or a dict), not a Path
    root = None if image_root is None else str(Path(image_root).resolve())
    python = require_megadetector_validator()
    if python is not None:
        return _in_subprocess(python, results, root)
    return run_megadetector_validator.validate(results, root)


def require_megadetector_validator() -> Optional[str]:
    """Skip the test unless the validator can run: the ``MEGADETECTOR_PYTHON`` to run it with,
    or None when it runs in this process. (Call it first in a test that makes costly outputs.)"""
    python = os.environ.get(MEGADETECTOR_PYTHON_ENV)
    if python:
        return python
    if PROJECT_VENV_PYTHON.is_file():
        return str(PROJECT_VENV_PYTHON)
    pytest.importorskip(VALIDATOR_MODULE, reason=f"megadetector-utils is not here and {MEGADETECTOR_PYTHON_ENV} is not set ({SETUP_HINT})")
    return None


def validate_megadetector_json(path: Path, image_root: Optional[Path] = None) -> None:
    """Assert that MegaDetector's validator finds nothing wrong with ``path``: no error and no
    warning (its warnings are format problems too: a non-standard top-level key, a failed file
    without ``"detections": null``). ``image_root``: every file named must exist there."""
    found = megadetector_validation(path, image_root)
    problems = [f"error: {message}" for message in found["errors"]] + [f"warning: {message}" for message in found["warnings"]]
    assert not problems, f"MegaDetector's validator rejects {path}:\n  " + "\n  ".join(problems)


def _in_subprocess(python: str, results: str, root: Optional[str]) -> dict[str, Any]:
    command = [python, run_megadetector_validator.__file__, results, *([root] if root is not None else [])]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.fail(f"{MEGADETECTOR_PYTHON_ENV}={python} could not run the validator: {error}")
    if done.returncode != 0:
        pytest.fail(f"{MEGADETECTOR_PYTHON_ENV}={python} could not run the validator ({SETUP_HINT}):\n{done.stderr.strip()}")
    return json.loads(done.stdout)
