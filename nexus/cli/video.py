"""``nexus video info FILE [--json]`` and ``nexus video frames FILE OUT [--every N | --fps F | ...]``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Inspect video files and extract frames.", no_args_is_help=True)


@app.command("info")
def info_command(
    file: Annotated[Path, typer.Argument(help="Video file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    count: Annotated[
        str, typer.Option("--count", help="Frame counting: demux (fast), decode (exact) or header.")
    ] = "demux",
) -> None:
    """Duration, fps, frame count (as read, and as the header declares), resolution, codec, rotation.

    Example:
        nexus video info clip.mp4 --json
    """
    from nexus.errors import NexusError
    from nexus.video.metadata import probe_video

    if count not in ("demux", "decode", "header"):
        raise NexusError(f"--count must be demux, decode or header, got {count!r}")
    info = probe_video(file, count=count)  # type: ignore[arg-type]
    if as_json:
        typer.echo(json.dumps(info.to_dict(), indent=2))
        return
    typer.echo(f"{file}: {info.codec} {info.width}x{info.height} @ {info.fps:.3f} fps, {info.duration:.3f} s")
    typer.echo(f"  frames: {info.frame_count} (header: {info.declared_frame_count})")
    typer.echo(f"  rotation: {info.rotation}  pix_fmt: {info.pix_fmt}  container: {info.container}")
    if info.truncated:
        typer.echo("  warning: truncated (fewer frames than the header promises)")


@app.command("frames")
def frames_command(
    file: Annotated[Path, typer.Argument(help="Video file.")],
    out: Annotated[str, typer.Argument(help="Folder for the frame images (created), or s3://bucket/prefix.")],
    every: Annotated[int, typer.Option("--every", help="Keep every Nth frame.")] = 1,
    fps: Annotated[float | None, typer.Option("--fps", help="Keep frames at about this rate.")] = None,
    keyframes: Annotated[bool, typer.Option("--keyframes", help="Keyframes only (fast).")] = False,
    start: Annotated[float, typer.Option("--start", help="First second (exact seek).")] = 0.0,
    end: Annotated[float | None, typer.Option("--end", help="Stop before this second.")] = None,
    ext: Annotated[str, typer.Option("--ext", help="jpg or png.")] = "jpg",
    strict: Annotated[bool, typer.Option("--strict", help="Fail on truncated or damaged files.")] = False,
) -> None:
    """Write sampled frames as images named by frame index (``frame_000123.jpg``), to a folder or to
    S3/MinIO (``S3_ENDPOINT``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``).

    Example:
        nexus video frames clip.mp4 frames/ --fps 2 --start 10 --end 20
        nexus video frames clip.mp4 s3://frames/clip-7 --every 30
    """
    from nexus.errors import NexusError
    from nexus.video.reader import FrameSampling, VideoFileSource, save_frames, upload_frames

    try:
        sampling = FrameSampling(every=every, fps=fps, keyframes=keyframes, start=start, end=end)
    except ValueError as error:
        raise NexusError(str(error)) from error
    if ext.lower().lstrip(".") not in ("jpg", "jpeg", "png"):
        raise NexusError(f"--ext must be jpg or png, got {ext!r}")
    source = VideoFileSource(file, sampling, strict=strict)
    if out.startswith("s3://"):
        keys = upload_frames(source, out, ext=ext)
        _require_frames(len(keys), source.info.duration, file)
        typer.echo(f"stored {len(keys)} frames under {out}")
        return
    written = save_frames(source, Path(out), ext=ext)
    _require_frames(len(written), source.info.duration, file)
    typer.echo(f"wrote {len(written)} frames to {out}")


def _require_frames(count: int, seconds: float, file: Path) -> None:
    from nexus.errors import NexusError

    if not count:
        message = f"no frames selected: the video lasts {seconds:.3f} s; check --start and --end"
        raise NexusError(message, path=file)
