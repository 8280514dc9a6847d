"""Run MegaDetector's ``validate_batch_results`` on one file; a standalone script.

It imports nothing from kifaru or the tests, so it runs in any Python that has megadetector-utils
(a scratch venv: ``tests.helpers.megadetector_format`` calls it through ``MEGADETECTOR_PYTHON``),
and is imported by that module when megadetector-utils is importable in kifaru's own venv.

    python run_megadetector_validator.py RESULTS.json [IMAGE_ROOT]

prints one JSON object: ``errors`` and ``warnings`` (lists of strings) and the validator's
per-category counts of the detections and classifications it went through.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any, Optional

VALIDATOR_FILE = "validate_batch_results.py"


def _describe(error: BaseException) -> str:
    """The validator's message, with where it was raised when the message alone is not enough:
    some of its checks are bare ``assert``s (no message) or index a dict that is not there
    (a ``KeyError`` naming only the key)."""
    message = str(error)
    if message and isinstance(error, (ValueError, AssertionError)):
        return message
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename.endswith(VALIDATOR_FILE)]
    where = f" (at {VALIDATOR_FILE}:{frames[-1].lineno}: {frames[-1].line})" if frames else ""
    return f"{type(error).__name__}: {message or '(no message)'}{where}"


def validate(results_path: str, image_root: Optional[str] = None) -> dict[str, Any]:
    """The validator's findings on ``results_path``, with its strictest options: every file the
    results name must exist under ``image_root`` when it is given (relative paths are joined to
    it; absolute ones are checked as they are)."""
    from megadetector.postprocessing.validate_batch_results import ValidateBatchResultsOptions, validate_batch_results

    options = ValidateBatchResultsOptions()
    options.check_image_existence = image_root is not None
    options.relative_path_base = image_root
    # Raised, not caught by the validator, so that _describe sees the traceback (the validator
    # stops at the first error either way).
    options.raise_errors = True
    try:
        found = validate_batch_results(results_path, options)["validation_results"]
    except Exception as error:  # noqa: BLE001 - every failure of the validator is a finding
        return {"errors": [_describe(error)], "warnings": [], "detection_counts": {}, "classification_counts": {}}
    return {
        # Not raised: a top level that is not a dict is reported without raising.
        "errors": list(found["errors"]),
        "warnings": list(found["warnings"]),
        "detection_counts": dict(found.get("detection_category_id_to_count", {})),
        "classification_counts": dict(found.get("classification_category_id_to_count", {})),
    }


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    print(json.dumps(validate(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else None)))
