"""zamba's time_distributed default loader config (spec section 4), shared by the benchmark and
fixture scripts in this folder (plain dicts: they run in kifaru's venv and in zamba's)."""

TIME_DISTRIBUTED_NO_DETECTOR = {
    "crop_bottom_pixels": 50,
    "fps": 4,
    "total_frames": 16,
    "model_input_height": 240,
    "model_input_width": 426,
    "ensure_total_frames": True,
}

TIME_DISTRIBUTED = {
    **TIME_DISTRIBUTED_NO_DETECTOR,
    "megadetector_lite_config": {
        "confidence": 0.25,
        "fill_mode": "score_sorted",
        "n_frames": 16,
        "image_width": 640,
        "image_height": 640,
        "frame_batch_size": 24,
    },
}
