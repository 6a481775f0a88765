"""Minimal files with the magic bytes of seed 001's image, document, audio, video and archive types."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile


def _zip(entries: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in entries.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("a.txt")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"hi"))
    return buffer.getvalue()


PAD = b"\x00" * 300

#: (name, bytes, file_path or None, expected content type)
SAMPLES: list[tuple[str, bytes, str | None, str]] = [
    ("jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + PAD, None, "image/jpeg"),
    ("png", b"\x89PNG\r\n\x1a\n" + PAD, None, "image/png"),
    ("gif", b"GIF89a" + PAD, None, "image/gif"),
    ("bmp", b"BM" + PAD, None, "image/bmp"),
    ("webp", b"RIFF\x00\x00\x00\x00WEBPVP8 " + PAD, None, "image/webp"),
    ("pdf", b"%PDF-1.7\n" + PAD, None, "application/pdf"),
    # An OLE container does not say "Word" in its first bytes: the extension decides.
    ("doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + PAD * 2, "reports/q3.doc", "application/msword"),
    ("docx", _zip({"[Content_Types].xml": "<Types/>", "word/document.xml": "<w/>"}), None,
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("txt", b"plain words\n", "notes.txt", "text/plain"),
    ("md", b"# Title\n", "README.md", "text/markdown"),
    ("mp3", b"ID3\x03\x00\x00\x00\x00\x00\x00" + PAD, None, "audio/mpeg"),
    ("wav", b"RIFF\x00\x00\x00\x00WAVEfmt " + PAD, None, "audio/x-wav"),
    ("flac", b"fLaC" + PAD, None, "audio/x-flac"),
    ("aac", b"\xff\xf1" + PAD, None, "audio/aac"),
    ("ogg", b"OggS" + PAD, None, "audio/ogg"),
    ("mp4", b"\x00\x00\x00\x18ftypmp42" + PAD, None, "video/mp4"),
    ("avi", b"RIFF\x00\x00\x00\x00AVI LIST" + PAD, None, "video/x-msvideo"),
    ("mkv", b"\x1a\x45\xdf\xa3\x93\x42\x82\x88matroska" + PAD, None, "video/x-matroska"),
    ("mov", b"\x00\x00\x00\x14ftypqt  " + PAD, None, "video/quicktime"),
    ("webm", b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm"
     + PAD, None, "video/webm"),
    ("zip", _zip({"a.txt": "hi"}), None, "application/zip"),
    ("tar", _tar(), None, "application/x-tar"),
    ("gz", gzip.compress(b"hello"), None, "application/gzip"),
    ("rar", b"Rar!\x1a\x07\x00" + PAD, None, "application/x-rar-compressed"),
    ("7z", b"7z\xbc\xaf\x27\x1c" + PAD, None, "application/x-7z-compressed"),
    ("unknown binary", b"\x00\x01\x02\x03" * 50, None, "application/octet-stream"),
    ("text without a name", "ünïcödé text\n".encode(), None, "text/plain"),
]  # fmt: skip
