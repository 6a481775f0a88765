"""The O.N.E. v0.1 stamp block: rendering, signing, finding and removing it.

A block is a run of ``name: value`` lines between ``---BEGIN ONEX STAMP---`` and ``---END ONEX STAMP---``.
In text files it is written as a comment of the file's language (``# ``, ``// ``, ``-- `` line prefixes, or
wrapped in ``<!-- -->`` / ``/* */``) after a shebang or XML declaration if there is one. The signature is a
keyed BLAKE3 MAC over the signed fields in their canonical order, under a key derived from the server
secret; ``key_id`` names that key so a secret can rotate while old stamps stay valid.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from blake3 import blake3

__all__ = [
    "BEGIN",
    "END",
    "FIELDS",
    "SIGNED_FIELDS",
    "CommentStyle",
    "FoundBlock",
    "Keyring",
    "comment_style",
    "find_block",
    "insert_block",
    "render_block",
    "without_block",
]

BEGIN = "---BEGIN ONEX STAMP---"
END = "---END ONEX STAMP---"
METADATA_VERSION = "0.1"
SIGNED_FIELDS = (
    "metadata_version", "stamp_id", "hash_algorithm", "file_hash", "namespace", "content_type", "size_bytes",
    "created_at", "key_id",
)  # fmt: skip
FIELDS = (*SIGNED_FIELDS, "signature")
_KEY_CONTEXT = "omninode-bridge 2026-11 O.N.E. v0.1 stamp signing key"
_CANONICAL_HEADER = "ONEX-STAMP/0.1\n"
#: A block is only looked for near the start of the content (after a shebang, a declaration, an opener).
_SEARCH_BYTES = 4096
_LINE = re.compile(r"^\s*(?:#|//|--|;)?\s*([a-z_]+):\s?(.*?)\s*$")


@dataclass(frozen=True, slots=True)
class CommentStyle:
    """How the block is written into a file: a prefix on each line, or an opening and closing line."""

    line_prefix: str = ""
    open: str | None = None
    close: str | None = None


_PLAIN = CommentStyle()
_HASH = CommentStyle("# ")
_SLASHES = CommentStyle("// ")
_DASHES = CommentStyle("-- ")
_MARKUP = CommentStyle(open="<!--", close="-->")
_C_BLOCK = CommentStyle(open="/*", close="*/")

_STYLES: dict[str, CommentStyle] = {
    "text/plain": _PLAIN, "text/csv": _PLAIN, "text/x-rst": _PLAIN,
    "text/x-python": _HASH, "application/x-sh": _HASH, "application/yaml": _HASH, "application/toml": _HASH,
    "text/x-ruby": _HASH, "text/x-perl": _HASH, "text/x-r": _HASH, "text/x-dockerfile": _HASH,
    "text/x-makefile": _HASH, "text/x-terraform": _HASH,
    "text/javascript": _SLASHES, "application/javascript": _SLASHES, "text/x-typescript": _SLASHES,
    "text/x-go": _SLASHES, "text/x-rust": _SLASHES, "text/x-java": _SLASHES, "text/x-kotlin": _SLASHES,
    "text/x-c": _SLASHES, "text/x-c++": _SLASHES, "text/x-csharp": _SLASHES, "text/x-swift": _SLASHES,
    "text/x-scala": _SLASHES, "application/x-php": _SLASHES, "text/x-scss": _SLASHES,
    "application/sql": _DASHES, "text/x-lua": _DASHES,
    "text/html": _MARKUP, "application/xml": _MARKUP, "image/svg+xml": _MARKUP, "text/markdown": _MARKUP,
    "text/css": _C_BLOCK,
}  # fmt: skip


def comment_style(content_type: str) -> CommentStyle | None:
    """The comment style for a text type, or None where no comment is safe (JSON: stamp detached)."""
    if content_type in _STYLES:
        return _STYLES[content_type]
    if content_type.startswith("text/"):
        return _PLAIN
    return None


def render_block(fields: dict[str, str], style: CommentStyle = _PLAIN) -> str:
    """The block's text, ending in a newline, written in ``style``."""
    lines = [BEGIN, *(f"{name}: {fields[name]}" for name in FIELDS), END]
    if style.line_prefix:
        lines = [style.line_prefix + line for line in lines]
    if style.open:
        lines = [style.open, *lines, style.close or ""]
    return "\n".join(lines) + "\n"


def _preamble_length(data: bytes) -> int:
    """Bytes of a first line that must stay first: a shebang or an XML declaration."""
    if data.startswith((b"#!", b"<?xml")):
        newline = data.find(b"\n")
        return len(data) if newline < 0 else newline + 1
    return 0


def insert_block(body: bytes, block: str) -> bytes:
    """``body`` with ``block`` prepended (after a shebang or XML declaration)."""
    cut = _preamble_length(body)
    return body[:cut] + block.encode() + body[cut:]


@dataclass(frozen=True, slots=True)
class FoundBlock:
    """A stamp block found in content.

    Attributes:
        start: Offset of the block's first byte (its comment opener if any).
        end: Offset just past the block (including its closing line's newline).
        fields: The ``name: value`` pairs read from it.
        text: The block in plain form (no comment markers), as stored.
    """

    start: int
    end: int
    fields: dict[str, str]

    @property
    def text(self) -> str:
        return render_block(self.fields) if set(FIELDS) <= set(self.fields) else ""

    def strip(self, data: bytes) -> bytes:
        """``data`` without this block."""
        return data[: self.start] + data[self.end :]


def _line_end(data: bytes, position: int) -> int:
    newline = data.find(b"\n", position)
    return len(data) if newline < 0 else newline + 1


def find_block(data: bytes) -> FoundBlock | None:
    """The stamp block at the start of ``data`` (after a shebang or XML declaration), if there is one."""
    window = data[:_SEARCH_BYTES]
    begin = window.find(BEGIN.encode())
    if begin < 0:
        return None
    preamble = _preamble_length(data)
    line_start = window.rfind(b"\n", 0, begin) + 1
    start = line_start
    # The line before may be a comment opener that belongs to the block.
    if line_start > preamble:
        previous_start = window.rfind(b"\n", 0, line_start - 1) + 1
        previous = window[previous_start:line_start].strip()
        if previous in (b"<!--", b"/*"):
            start = previous_start
    if data[preamble:start].strip():
        return None  # the block is not at the start: some other text merely contains the marker
    end_marker = data.find(END.encode(), begin)
    if end_marker < 0:
        return None
    end = _line_end(data, end_marker)
    if start != line_start:  # a wrapped block: its closing line belongs to it
        closing_end = _line_end(data, end)
        if data[end:closing_end].strip() in (b"-->", b"*/"):
            end = closing_end
    fields: dict[str, str] = {}
    for raw in data[_line_end(data, begin) : end_marker].decode("utf-8", "replace").splitlines():
        match = _LINE.match(raw)
        if match:
            fields[match.group(1)] = match.group(2)
    return FoundBlock(start, end, fields)


def without_block(data: bytes) -> bytes:
    """``data`` with the stamp block at its start removed (unchanged if there is none)."""
    found = find_block(data)
    return found.strip(data) if found is not None else data


class Keyring:
    """Signing keys: the active one and former ones still accepted, by key id.

    A key is derived from its secret with BLAKE3's key-derivation mode; its id is the first 16 hex digits
    of the key's own BLAKE3 hash, so stamps name their key without revealing anything about it.

    Args:
        active_secret: Signs new stamps.
        previous_secrets: Still verify stamps made before a rotation.
    """

    def __init__(self, active_secret: str, previous_secrets: list[str] | tuple[str, ...] = ()) -> None:
        self.active_id, self._active = self._derive(active_secret)
        self._keys = {self.active_id: self._active}
        for secret in previous_secrets:
            key_id, key = self._derive(secret)
            self._keys.setdefault(key_id, key)

    @staticmethod
    def _derive(secret: str) -> tuple[str, bytes]:
        key = blake3(secret.encode(), derive_key_context=_KEY_CONTEXT).digest()
        return blake3(key).hexdigest()[:16], key

    @staticmethod
    def canonical(fields: dict[str, str]) -> bytes:
        """The signed bytes: a header line and each signed field as ``name: value``, in order."""
        return (_CANONICAL_HEADER + "\n".join(f"{name}: {fields[name]}" for name in SIGNED_FIELDS)).encode()

    def sign(self, fields: dict[str, str]) -> dict[str, str]:
        """``fields`` with ``key_id`` and ``signature`` set by the active key."""
        signed = {**fields, "key_id": self.active_id}
        signed["signature"] = blake3(self.canonical(signed), key=self._active).hexdigest()
        return signed

    def verify(self, fields: dict[str, str]) -> tuple[bool, str | None]:
        """Check a block's signature; returns (valid, reason when not)."""
        key = self._keys.get(fields.get("key_id", ""))
        if key is None:
            return False, f"unknown key id {fields.get('key_id')!r}"
        expected = blake3(self.canonical(fields), key=key).hexdigest()
        if not hmac.compare_digest(expected, fields.get("signature", "")):
            return False, "signature does not match the stamp's fields"
        return True, None
