"""The banded network: the same outputs as the full one for pictures above black rows, less work."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch

from kifaru.detection import onnx_networks
from kifaru.detection.banded import BandedYOLOX
from kifaru.detection.megadetector_lite import BAND_STEP, band_rows
from kifaru.detection.megadetector_lite import MegadetectorLite, fit_to_input, to_batch
from kifaru.detection.yolox import YOLOX


@pytest.fixture(scope="module")
def model(random_weights):
    network = YOLOX()
    network.load_state_dict(torch.load(random_weights, weights_only=True)["model"])
    return network.eval()


@pytest.fixture(scope="module")
def model64(model):
    """The same network in float64: the exact outputs, for the purposes of float32 rounding."""
    return copy.deepcopy(model).double().eval()


def _letterboxed(content_rows: int, count: int = 2, seed: int = 0, width: int = 640) -> torch.Tensor:
    """Images with random pictures in their top ``content_rows`` rows, black below."""
    images = torch.rand(count, 3, 640, width, generator=torch.Generator().manual_seed(seed)) * 255
    images[:, :, content_rows:] = 0
    return images


def _max_error(got: torch.Tensor, exact: torch.Tensor) -> tuple[float, float]:
    """The greatest absolute differences of the scores and of the boxes."""
    difference = (got.double() - exact).abs()
    return difference[..., 4:].max().item(), difference[..., :4].max().item()


@pytest.mark.parametrize("content_rows", [343, 352, 360, 1, 100, 479, 610])
def test_banded_outputs_equal_the_full_networks(model, model64, content_rows):
    """The banded network computes the same sums as the full one, in another order (the convolutions
    run on maps of other heights, so the threads split the work differently): its outputs equal
    the full network's up to rounding, which we bound from the rounding itself, not from one
    machine's luck (a fixed 1e-5 on scores failed with 2 threads: 1.9e-5 to 3.2e-5 is measured).

    In float64 the two must agree to float64 rounding: float32's rounding makes the full network's
    scores differ from float64's by up to 7.5e-5 (boxes 1.8e-3 px of up to 632 px), so this network
    amplifies the unit rounding (1.2e-7) about 600 times; float64's (1.1e-16) then gives ~1e-13
    (1.6e-14 is measured). 1e-9 on scores and 1e-7 px on boxes leave four orders of margin and are
    eight below what one borrowed row too few makes (test_the_band_must_cover_the_picture: > 0.1).

    In float32, where the detector runs, the banded network must be as accurate as the full one:
    its error against the float64 outputs at most twice the full network's own float32 error
    (measured ratios 0.74 to 1.17 with 1 or 2 threads), plus one unit of rounding of the output's
    scale (scores up to 1, boxes up to 640 px) for the cases where that error is ~0.

    (Half-width inputs, to keep float64 affordable: the band is a matter of rows.)"""
    rows = band_rows(content_rows, 640)
    images = _letterboxed(content_rows, width=320)
    with torch.inference_mode():
        exact = model64(images.double())
        banded64 = BandedYOLOX(model64, rows, input_width=320).eval()(images[:, :, :rows].double().contiguous())
        banded = BandedYOLOX(model, rows, input_width=320).eval()
        full, band = model(images), banded(images[:, :, :rows].contiguous())
    assert band.shape == full.shape == banded64.shape == (2, 4200, 6)
    assert banded64.dtype == torch.float64
    score_error, box_error = _max_error(banded64, exact)
    assert score_error < 1e-9 and box_error < 1e-7, (score_error, box_error)

    unit = float(torch.finfo(torch.float32).eps)
    full_score_error, full_box_error = _max_error(full, exact)
    band_score_error, band_box_error = _max_error(band, exact)
    assert band_score_error <= 2 * full_score_error + unit, (band_score_error, full_score_error)
    assert band_box_error <= 2 * full_box_error + 640 * unit, (band_box_error, full_box_error)


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
    in_torch = MegadetectorLite(random_weights, runtime="pytorch")
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
    real_export = onnx_networks.export_checked

    def export_banded_wrong(model, rows, path):
        if rows:
            raise RuntimeError("its outputs differ from PyTorch's (scores by 0.3, boxes by 4 px)")
        real_export(model, rows, path)

    monkeypatch.setattr(onnx_networks, "export_checked", export_banded_wrong)
    batch = to_batch([fit_to_input(frame, 640, 640) for frame in _frames(720, 1280, 2)], 640, 640)
    with caplog.at_level(logging.WARNING, logger="kifaru.detection.onnx_networks"):
        got = detector.raw_outputs(batch, content_rows=360)
    assert "banded detector network for 384 rows is unavailable" in caplog.text
    assert "outputs differ" in caplog.text
    np.testing.assert_array_equal(got, detector.raw_outputs(batch))
    assert not list((tmp_path / "onnx").glob("*-rows*.onnx"))
