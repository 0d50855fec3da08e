"""Errors of video files and streams: one line naming the file or URL and the problem."""

from __future__ import annotations

from nexus.errors import NexusError


class VideoError(NexusError):
    """A file that should be a video is missing, empty, not a video, or cannot be decoded."""


class VideoTruncatedError(VideoError):
    """A video ended before the frame count its header promises (raised only in strict mode)."""


class StreamError(NexusError):
    """A stream URL is malformed or a stream could not be read."""
