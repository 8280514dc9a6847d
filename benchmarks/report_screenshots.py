"""The screenshots of the report in docs/, made again by this script (headless Chromium, Debian's
``chromium``; MegadetectorLite's weights in the model cache):

    .venv/bin/python benchmarks/report_screenshots.py

- ``docs/report.png``: ``kifaru detect --report`` on the sample clips (``kifaru samples``), the
  README's quick start: the real detector's boxes on real photographs.
- ``docs/report-review.png``: the run of tests/helpers/results.py (a clip of a deer-coloured
  block, photos in a burst, a damaged file and a missing one; probabilities set by the test, not
  a model's), filtered to the files to review, with the failures below.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def screenshot(url: str, target: Path, profile: Path, height: int = 900) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium here (Debian: apt-get install chromium)")
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
         f"--window-size=1280,{height}", "--virtual-time-budget=5000", f"--screenshot={target}", url],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    print(f"wrote {target}")


def main() -> None:
    from kifaru.cli import main as kifaru
    from kifaru.report import write_report
    from kifaru.samples import make_samples
    from tests.helpers.results import make_results

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        make_samples(work / "samples")
        if kifaru(["detect", "--data-dir", str(work / "samples"), "--output-dir", str(work / "detections"), "--report", "-q"]) != 0:
            raise SystemExit("detect failed")
        screenshot((work / "detections" / "report.html").as_uri(), ROOT / "docs" / "report.png", work / "profile")
        results = make_results(work / "scenario")
        page = write_report(results.folder).path
        screenshot(page.as_uri() + "#review=1", ROOT / "docs" / "report-review.png", work / "profile", height=760)


if __name__ == "__main__":
    main()
