"""Input normalisation constants shared by the PyTorch and ONNX Runtime paths (no PyTorch import)."""

# TimeDistributedEfficientNet: THWC uint8 frames -> TCHW floats in 0..1, normalised with ImageNet's statistics.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
