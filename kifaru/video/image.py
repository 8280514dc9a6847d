"""Still images behind the same interface as videos: a one-frame source."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from kifaru.exceptions import EmptyMediaError, MediaNotFoundError, NotAVideoError
from kifaru.video.decode import DecodedFrame, StreamInfo


class ImageSource:
    """A photo as a clip of one frame, upright (EXIF orientation applied) and in RGB."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise MediaNotFoundError(self.path, "file not found")
        if self.path.stat().st_size == 0:
            raise EmptyMediaError(self.path, "file is empty (0 bytes)")
        try:
            with Image.open(self.path) as image:
                self._rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise NotAVideoError(self.path, f"not an image that can be read ({error})") from None
        height, width = self._rgb.shape[:2]
        self.info = StreamInfo(
            path=str(self.path),
            codec="image",
            width=width,
            height=height,
            timestamps=[Fraction(0)],
            keyframes=[True],
            end_time=Fraction(1),
            duration=0.0,
        )
        self.last_failures: list[str] = []

    def lowres_factors(self) -> Sequence[int]:
        return [1]

    def decode(self, indices: Sequence[int], scale_down: int = 1, threaded: bool = True) -> Iterator[DecodedFrame]:
        if 0 in indices:
            yield DecodedFrame(0, 0.0, 0, 1, av.VideoFrame.from_ndarray(self._rgb, format="rgb24"))

    def close(self) -> None:
        pass
