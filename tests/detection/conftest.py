"""Shared by the detector tests: a random-weight YOLOX-tiny checkpoint in zamba's layout."""

import pytest
import torch

from kifaru.detection.yolox import YOLOX


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory):
    """A checkpoint shaped like zamba's (state dict under "model", plus other keys)."""
    torch.manual_seed(0)
    model = YOLOX()
    # BatchNorm statistics of real inputs, as training leaves them: every layer's activations are
    # then of unit scale, so the outputs depend on the picture as a trained network's do (with the
    # initial statistics they barely would, and tests comparing outputs could not fail).
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # a cumulative average: one pass sets the statistics
    images = torch.rand(2, 3, 640, 640) * 255
    images[:, :, 360:] = 0  # frames as the detector gets them: pictures above black padding
    model.train()
    with torch.no_grad():
        model(images)
        for layer in model.head.reg_preds:  # box sizes are exp() of these: keep them finite
            layer.weight.mul_(0.1)
    model.eval()
    path = tmp_path_factory.mktemp("weights") / "random_yolox_tiny.pth"
    torch.save({"start_epoch": 1, "model": model.state_dict(), "optimizer": {}}, path)
    return path
