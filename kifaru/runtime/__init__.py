"""Where and how networks run: the device, worker processes, memory, and the choice between
ONNX Runtime and PyTorch with one way to export a network to ONNX and check it.

Nothing is imported here: each module is light on its own (PyTorch and ONNX Runtime are imported
only where a network is built or run).
"""
