"""Video files and live streams: metadata, sampled decoding, frame export, streams, annotation, H.264 output.

Example:
    >>> from nexus.video import FrameSampling, VideoFileSource, probe_video
    >>> probe_video("clip.mp4").fps  # doctest: +SKIP
    30.0
    >>> frames = list(VideoFileSource("clip.mp4", FrameSampling(fps=1.0)))  # doctest: +SKIP
"""

from __future__ import annotations

from nexus.video.annotators import BoxAnnotator, LabelAnnotator, TraceAnnotator
from nexus.video.errors import StreamError, VideoError, VideoTruncatedError
from nexus.video.metadata import VideoInfo, probe_video
from nexus.video.reader import FrameSampling, VideoFileSource, VideoFrame, frame_to_bgr, save_frames
from nexus.video.sink import VideoSink
from nexus.video.streams import (
    MultiStreamSource,
    StreamConfig,
    StreamFrame,
    StreamSource,
    StreamState,
    StreamStats,
)

__all__ = [
    "BoxAnnotator",
    "FrameSampling",
    "LabelAnnotator",
    "MultiStreamSource",
    "StreamConfig",
    "StreamError",
    "StreamFrame",
    "StreamSource",
    "StreamState",
    "StreamStats",
    "TraceAnnotator",
    "VideoError",
    "VideoFileSource",
    "VideoFrame",
    "VideoInfo",
    "VideoSink",
    "VideoTruncatedError",
    "frame_to_bgr",
    "probe_video",
    "save_frames",
]
