"""Helpers both test kinds share (no servers): sample files, contract copies, OpenAPI-derived cases, data."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(__file__).resolve().parent / "data"
