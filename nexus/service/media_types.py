"""Content types recognised from magic bytes (never from the file name)."""

from __future__ import annotations

from typing import Literal

UploadKind = Literal["video", "image", "artifact"]
SNIFF_BYTES = 376

ALLOWED: dict[str, frozenset[str]] = {
    "video": frozenset({"video/mp4", "video/quicktime", "video/x-matroska", "video/x-msvideo", "video/mp2t"}),
    "image": frozenset({"image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp"}),
    "artifact": frozenset(
        {
            "application/zip",
            "application/gzip",
            "application/x-tar",
            "application/pdf",
            "image/jpeg",
            "image/png",
        }
    ),
}


def sniff(head: bytes) -> str | None:
    """The content type of a file from its first bytes, or ``None`` when unrecognised.

    Example:
        >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(8))
        'image/png'
        >>> sniff(b"\\x00\\x00\\x00\\x18ftypisom") , sniff(b"hello")
        ('video/mp4', None)
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"BM") and len(head) >= 14:
        return "image/bmp"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "video/x-msvideo"
    if head[4:8] == b"ftyp":
        return "video/quicktime" if head[8:12] == b"qt  " else "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/x-matroska"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "video/mp2t"
    if head.startswith(b"PK\x03\x04"):
        return "application/zip"
    if head.startswith(b"\x1f\x8b"):
        return "application/gzip"
    if head[257:262] == b"ustar":
        return "application/x-tar"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None
