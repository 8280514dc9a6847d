"""MegadetectorLite: preprocessing and postprocessing as zamba does them, runtimes that agree, and
(with the real weights) the same detections as zamba 2.7.2 on the shared real media.

The reference detections were made by zamba itself (benchmarks/zamba_mdlite_reference.py in its
own venv): tests/fixtures/zamba_mdlite/detections.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from kifaru.detection.megadetector_lite import (
    FrameDetections,
    MegadetectorLite,
    fit_size,
    fit_to_input,
    nms,
    postprocess,
    to_batch,
)
from kifaru.detection.yolox import YOLOX
from kifaru.video.decode import PyAVVideoSource

FIXTURE = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "zamba_mdlite" / "detections.json").read_text())


# -- preprocessing ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(180, 320), (404, 720), (1030, 1920), (576, 768), (640, 640), (900, 300), (61, 80), (7, 1000)])
@pytest.mark.parametrize("target", [(640, 640), (416, 416), (256, 320)])
def test_frames_are_fitted_and_padded_exactly_as_zamba_pads_them(size, target):
    rng = np.random.default_rng(sum(size))
    frame = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    expected = np.asarray(
        ImageOps.pad(Image.fromarray(frame), (target[1], target[0]), method=Image.BICUBIC, color=None, centering=(0, 0)),
        dtype=np.float32,
    ).transpose(2, 0, 1)
    fitted = fit_to_input(frame, *target)
    assert fitted.shape[:2] == fit_size(*size, *target)
    np.testing.assert_array_equal(to_batch([fitted], *target)[0], expected)


# -- postprocessing --------------------------------------------------------------------------


def _prediction(boxes_cxcywh, objectness, class_prob):
    return np.column_stack([np.asarray(boxes_cxcywh, float), objectness, class_prob]).astype(np.float32)


def test_scores_are_objectness_times_class_and_boxes_come_back_relative_to_the_frame():
    # A 1280 x 720 frame fitted to 640 x 640 is scaled by 0.5.
    prediction = _prediction([[320, 180, 100, 50], [100, 100, 20, 20]], [0.9, 0.9], [0.5, 0.2])
    found = postprocess(prediction, 0.25, 0.45, frame_size=(720, 1280), input_size=(640, 640))
    assert found.scores == pytest.approx([0.45])
    np.testing.assert_allclose(found.boxes, [[540 / 1280, 310 / 720, 740 / 1280, 410 / 720]], rtol=1e-6)
    assert found.score == pytest.approx(0.45)


def test_a_frame_with_nothing_scores_zero():
    found = postprocess(_prediction([[10, 10, 5, 5]], [0.1], [0.9]), 0.25, 0.45, (640, 640), (640, 640))
    assert len(found) == 0 and found.score == 0.0 and found.boxes.shape == (0, 4)


def test_score_equal_to_the_confidence_is_kept():
    found = postprocess(_prediction([[10, 10, 5, 5]], [0.5], [0.5]), 0.25, 0.45, (640, 640), (640, 640))
    assert found.scores == pytest.approx([0.25])


def test_nms_keeps_what_torchvision_keeps():
    torchvision = pytest.importorskip("torchvision")
    rng = np.random.default_rng(3)
    for _ in range(30):
        n = int(rng.integers(1, 60))
        corner = rng.uniform(0, 500, (n, 2))
        boxes = np.concatenate([corner, corner + rng.uniform(5, 150, (n, 2))], axis=1).astype(np.float32)
        scores = rng.uniform(0, 1, n).astype(np.float32)
        threshold = float(rng.uniform(0.1, 0.9))
        expected = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold).numpy()
        np.testing.assert_array_equal(nms(boxes, scores, threshold), expected)


# -- the network and its runtimes, with random weights ---------------------------------------


def test_the_network_has_yolox_tinys_parameter_names_and_shapes():
    state = YOLOX(num_classes=1, depth=0.33, width=0.375).state_dict()
    assert tuple(state["backbone.backbone.stem.conv.conv.weight"].shape) == (24, 12, 3, 3)
    assert tuple(state["backbone.backbone.dark5.1.conv2.conv.weight"].shape) == (384, 768, 1, 1)
    assert tuple(state["backbone.C3_n4.m.0.conv2.conv.weight"].shape) == (192, 192, 3, 3)
    assert tuple(state["head.obj_preds.2.weight"].shape) == (1, 96, 1, 1)
    assert sum(v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))) == 5_032_866  # as in the official checkpoint (which loads with strict=True)


def test_onnx_runtime_agrees_with_pytorch(random_weights, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path))
    in_torch = MegadetectorLite(random_weights, runtime="pytorch")
    in_onnx = MegadetectorLite(random_weights, runtime="onnxruntime")
    assert (in_torch.runtime, in_onnx.runtime) == ("pytorch", "onnxruntime")
    assert list((tmp_path / "onnx").glob("*.onnx")), "the checked export is kept for the next process"
    batch = to_batch([np.random.default_rng(1).integers(0, 256, (360, 640, 3), dtype=np.uint8)] * 3, 640, 640)
    expected, got = in_torch.raw_outputs(batch), in_onnx.raw_outputs(batch)
    assert got.shape == expected.shape == (3, 8400, 6)
    np.testing.assert_allclose(got[..., 4:], expected[..., 4:], atol=1e-4)
    np.testing.assert_allclose(got[..., :4], expected[..., :4], atol=0.05)


def test_detect_batches_frames_of_any_size(random_weights):
    detector = MegadetectorLite(random_weights, runtime="pytorch")
    frames = [np.full((90, 160, 3), 100, np.uint8), np.full((300, 200, 3), 30, np.uint8), np.zeros((50, 50, 3), np.uint8)]
    one_batch = detector.detect(frames, image_height=128, image_width=128, confidence=0.0, batch_size=8)
    small_batches = detector.detect(frames, image_height=128, image_width=128, confidence=0.0, batch_size=1)
    assert len(one_batch) == 3 and all(isinstance(found, FrameDetections) for found in one_batch)
    for a, b in zip(one_batch, small_batches):
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)


# -- the real weights, against zamba ----------------------------------------------------------


def _assert_same_detections(ours: FrameDetections, reference: list, where: str, tolerance: float = 0.02):
    """Same boxes (matched by IoU) and scores within ``tolerance``; a box zamba or kifaru has alone
    must be within ``tolerance`` of the detector's confidence (decoders differ by a few levels)."""
    reference = np.asarray(reference, float).reshape(-1, 5)
    unmatched_ours = set(range(len(ours)))
    for box in reference:
        if not len(ours):
            assert box[4] < FIXTURE["config"]["confidence"] + tolerance, f"{where}: kifaru misses {box}"
            continue
        distance = np.abs(ours.boxes - box[:4]).max(axis=1)
        best = int(distance.argmin())
        if distance[best] <= tolerance:
            assert abs(ours.scores[best] - box[4]) <= tolerance, f"{where}: score {ours.scores[best]} vs {box[4]}"
            unmatched_ours.discard(best)
        else:
            assert box[4] < FIXTURE["config"]["confidence"] + tolerance, f"{where}: kifaru misses {box}"
    for k in unmatched_ours:
        assert ours.scores[k] < FIXTURE["config"]["confidence"] + tolerance, f"{where}: kifaru's extra {ours.boxes[k]} {ours.scores[k]}"


def test_dog_photo_same_single_detection_as_zamba(megadetector_lite, shared_data):
    reference = FIXTURE["image"]
    image = np.asarray(Image.open(shared_data / reference["path"]).convert("RGB"))
    (found,) = megadetector_lite.detect([image])
    assert len(found) == 1 == len(reference["detections"])
    np.testing.assert_allclose(found.boxes[0], reference["detections"][0][:4], atol=1e-3)
    assert found.scores[0] == pytest.approx(reference["detections"][0][4], abs=1e-3)


def _sample(clip: dict, count: int) -> list[tuple[int, list]]:
    """Up to ``count`` of the clip's reference frames, half with detections, spread over the clip
    (the detector takes ~0.15 s a frame on two CPU cores: every frame would take minutes)."""
    frames = list(zip(clip["frame_indices"], clip["detections"]))
    with_animal = [f for f in frames if f[1]]
    without = [f for f in frames if not f[1]]
    picked = with_animal[:: max(1, len(with_animal) // (count // 2))][: count // 2] if with_animal else []
    rest = count - len(picked)
    picked += without[:: max(1, len(without) // rest)][:rest] if without else []
    return sorted(picked)


@pytest.mark.parametrize("clip", FIXTURE["clips"], ids=lambda clip: Path(clip["path"]).name)
def test_same_detections_as_zamba_on_real_clips(megadetector_lite, shared_data, clip):
    sample = _sample(clip, 12 if clip["path"].startswith("real-videos") else 3)
    source = PyAVVideoSource(shared_data / clip["path"])
    try:
        frames = {frame.index: frame.to_rgb() for frame in source.decode([index for index, _ in sample])}
    finally:
        source.close()
    assert sorted(frames) == [index for index, _ in sample]
    found = megadetector_lite.detect([frames[index] for index, _ in sample])
    assert sum(len(reference) for _, reference in sample) or not any(clip["detections"])
    for (index, reference), ours in zip(sample, found):
        _assert_same_detections(ours, reference, f"{clip['path']} frame {index}")
