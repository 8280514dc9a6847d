"""The banded network: the same outputs as the full one for pictures above black rows, less work."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from kifaru.detection import megadetector_lite
from kifaru.detection.banded import BandedYOLOX
from kifaru.detection.megadetector_lite import BAND_STEP, band_rows
from kifaru.detection.megadetector_lite import MegadetectorLite, fit_to_input, to_batch
from kifaru.detection.yolox import YOLOX


@pytest.fixture(scope="module")
def model(random_weights):
    network = YOLOX()
    network.load_state_dict(torch.load(random_weights, weights_only=True)["model"])
    return network.eval()


def _letterboxed(content_rows: int, count: int = 2, seed: int = 0) -> torch.Tensor:
    """Images with random pictures in their top ``content_rows`` rows, black below."""
    images = torch.rand(count, 3, 640, 640, generator=torch.Generator().manual_seed(seed)) * 255
    images[:, :, content_rows:] = 0
    return images


@pytest.mark.parametrize("content_rows", [343, 352, 360, 1, 100, 479, 610])
def test_banded_outputs_equal_the_full_networks(model, content_rows):
    rows = band_rows(content_rows, 640)
    images = _letterboxed(content_rows)
    banded = BandedYOLOX(model, rows).eval()
    with torch.inference_mode():
        full, band = model(images), banded(images[:, :, :rows].contiguous())
    assert band.shape == full.shape == (2, 8400, 6)
    torch.testing.assert_close(band[..., 4:], full[..., 4:], rtol=0, atol=1e-5)
    torch.testing.assert_close(band[..., :4], full[..., :4], rtol=1e-5, atol=1e-3)


def test_the_band_must_cover_the_picture(model):
    """A picture reaching below the band changes the outputs far beyond the tolerances above
    (so those comparisons would catch rows borrowed wrongly)."""
    banded = BandedYOLOX(model, 352).eval()
    images = _letterboxed(420)
    with torch.inference_mode():
        difference = (banded(images[:, :, :352].contiguous()) - model(images)).abs()
    assert difference[..., 4:].max() > 0.1


def test_band_rows_round_up_to_a_few_network_sizes():
    assert [band_rows(rows, 640) for rows in (1, 32, 33, 335, 343, 360, 639, 640)] == [32, 32, 64, 352, 352, 384, 640, 640]
    assert all(band_rows(rows, 640) % BAND_STEP == 0 for rows in range(1, 641))


def test_banded_network_refuses_other_heights(model):
    banded = BandedYOLOX(model, 352)
    with pytest.raises(ValueError, match="352 input rows, not 640"):
        banded(torch.zeros(1, 3, 640, 640))
    with pytest.raises(ValueError, match="even"):
        BandedYOLOX(model, 351)


# -- in the detector (ONNX Runtime) -----------------------------------------------------------


def _frames(height: int, width: int, count: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(height)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def test_detector_uses_banded_networks_and_gets_the_full_networks_outputs(random_weights, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path))
    detector = MegadetectorLite(random_weights, runtime="onnxruntime")
    fitted = [fit_to_input(frame, 640, 640) for frame in _frames(720, 1280)]  # 360 rows of picture
    batch = to_batch(fitted, 640, 640)
    banded, full = detector.raw_outputs(batch, content_rows=360), detector.raw_outputs(batch)
    np.testing.assert_allclose(banded[..., 4:], full[..., 4:], atol=1e-4)
    np.testing.assert_allclose(banded[..., :4], full[..., :4], atol=0.05)
    exports = sorted(path.name for path in (tmp_path / "onnx").glob("*.onnx"))
    assert len(exports) == 2 and exports[0].endswith("-rows384.onnx"), exports

    # detect() passes the pictures' height; a second detector reuses the checked export.
    in_torch = MegadetectorLite(random_weights, runtime="torch")
    settings = dict(confidence=0.01, nms_threshold=0.45)
    frames = _frames(720, 1280) + _frames(480, 640)  # 360 and 480 rows: two bands
    again = MegadetectorLite(random_weights, runtime="onnxruntime")
    for ours, reference in zip(again.detect(frames, **settings), in_torch.detect(frames, **settings)):
        np.testing.assert_allclose(ours.scores, reference.scores, atol=1e-4)
        # (Further down, near-equal scores may let NMS keep different boxes.)
        np.testing.assert_allclose(ours.boxes[0], reference.boxes[0], atol=1e-3)
    assert {path.name.rsplit("-", 1)[-1] for path in (tmp_path / "onnx").glob("*-rows*.onnx")} == {"rows384.onnx", "rows480.onnx"}


def test_a_banded_network_that_fails_its_check_is_not_used(random_weights, tmp_path, monkeypatch, caplog):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path))
    detector = MegadetectorLite(random_weights, runtime="onnxruntime")
    real_export = megadetector_lite._export_checked

    def export_banded_wrong(model, rows, path, *args):
        if rows:
            raise RuntimeError("its outputs differ from PyTorch's (scores by 0.3, boxes by 4 px)")
        real_export(model, rows, path, *args)

    monkeypatch.setattr(megadetector_lite, "_export_checked", export_banded_wrong)
    batch = to_batch([fit_to_input(frame, 640, 640) for frame in _frames(720, 1280, 2)], 640, 640)
    with caplog.at_level(logging.WARNING, logger="kifaru.detection.megadetector_lite"):
        got = detector.raw_outputs(batch, content_rows=360)
    assert "banded detector network for 384 rows is unavailable" in caplog.text
    assert "outputs differ" in caplog.text
    np.testing.assert_array_equal(got, detector.raw_outputs(batch))
    assert not list((tmp_path / "onnx").glob("*-rows*.onnx"))
