"""Content-type detection: magic bytes (filetype), then the file extension, then a text check."""

from __future__ import annotations

import mimetypes
from pathlib import PurePosixPath

import filetype

__all__ = ["OCTET_STREAM", "detect_content_type", "is_textual", "looks_like_text"]

OCTET_STREAM = "application/octet-stream"

#: Extensions Python's mimetypes misses or gets wrong for source files; checked before mimetypes.
_EXTENSIONS: dict[str, str] = {
    ".txt": "text/plain", ".md": "text/markdown", ".markdown": "text/markdown", ".rst": "text/x-rst",
    ".py": "text/x-python", ".pyi": "text/x-python", ".js": "text/javascript", ".mjs": "text/javascript",
    ".ts": "text/x-typescript", ".tsx": "text/x-typescript", ".jsx": "text/javascript",
    ".json": "application/json", ".yaml": "application/yaml", ".yml": "application/yaml",
    ".toml": "application/toml", ".ini": "text/plain", ".cfg": "text/plain", ".env": "text/plain",
    ".sh": "application/x-sh", ".bash": "application/x-sh", ".zsh": "application/x-sh",
    ".sql": "application/sql", ".html": "text/html", ".htm": "text/html", ".xml": "application/xml",
    ".svg": "image/svg+xml", ".css": "text/css", ".scss": "text/x-scss", ".csv": "text/csv",
    ".go": "text/x-go", ".rs": "text/x-rust", ".java": "text/x-java", ".kt": "text/x-kotlin",
    ".c": "text/x-c", ".h": "text/x-c", ".cc": "text/x-c++", ".cpp": "text/x-c++", ".hpp": "text/x-c++",
    ".cs": "text/x-csharp", ".swift": "text/x-swift", ".rb": "text/x-ruby", ".php": "application/x-php",
    ".lua": "text/x-lua", ".r": "text/x-r", ".pl": "text/x-perl", ".scala": "text/x-scala",
    ".dockerfile": "text/x-dockerfile", ".tf": "text/x-terraform",
    # Seed 001's document, audio, video and archive types, for when magic bytes do not decide.
    ".pdf": "application/pdf", ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".mp3": "audio/mpeg", ".wav": "audio/x-wav", ".flac": "audio/x-flac", ".aac": "audio/aac",
    ".ogg": "audio/ogg", ".mp4": "video/mp4", ".avi": "video/x-msvideo", ".mkv": "video/x-matroska",
    ".mov": "video/quicktime", ".webm": "video/webm", ".zip": "application/zip", ".tar": "application/x-tar",
    ".gz": "application/gzip", ".rar": "application/x-rar-compressed", ".7z": "application/x-7z-compressed",
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif", ".bmp": "image/bmp",
    ".webp": "image/webp",
}  # fmt: skip

_FILENAMES = {"dockerfile": "text/x-dockerfile", "makefile": "text/x-makefile"}

_TEXTUAL_APPLICATION = {
    "application/json", "application/yaml", "application/toml", "application/x-sh", "application/sql",
    "application/xml", "application/x-php", "image/svg+xml", "application/javascript",
}  # fmt: skip


def looks_like_text(head: bytes) -> bool:
    """UTF-8 without NUL bytes (a multi-byte character cut at the end of ``head`` is allowed)."""
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.reason == "unexpected end of data" and exc.start >= len(head) - 3
    return True


def is_textual(content_type: str) -> bool:
    """Whether a content type is text that a stamp block can be written into."""
    return content_type.startswith("text/") or content_type in _TEXTUAL_APPLICATION


def _by_extension(file_path: str | None) -> str | None:
    if not file_path:
        return None
    name = PurePosixPath(file_path).name.lower()
    if name in _FILENAMES:
        return _FILENAMES[name]
    suffix = PurePosixPath(name).suffix
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed


def detect_content_type(head: bytes, file_path: str | None = None) -> str:
    """The content type of data starting with ``head`` (64 KiB is plenty; filetype reads 8 KiB at most).

    Order: magic bytes, then the extension of ``file_path``, then ``text/plain`` for UTF-8 text, else
    ``application/octet-stream``.
    """
    kind = filetype.guess(head) if head else None
    if kind is not None:
        mime: str = kind.mime
        return mime
    by_extension = _by_extension(file_path)
    if by_extension is not None:
        return by_extension
    if looks_like_text(head):
        return "text/plain"
    return OCTET_STREAM
