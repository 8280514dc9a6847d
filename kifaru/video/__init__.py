"""Video and image decoding, frame selection and the frame cache."""

from kifaru.video.loader import FrameLoader, LoadedFrames, Thumbnails, load_video, load_video_frames, open_source
from kifaru.video.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, find_media

__all__ = [
    "FrameLoader",
    "IMAGE_SUFFIXES",
    "LoadedFrames",
    "Thumbnails",
    "VIDEO_SUFFIXES",
    "find_media",
    "load_video",
    "load_video_frames",
    "open_source",
]
