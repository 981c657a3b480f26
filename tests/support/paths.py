"""The repository's root and the example files the tests read (independent of the test's depth)."""

from __future__ import annotations

from pathlib import Path

#: The repository root (the folder holding ``pyproject.toml``).
REPO = Path(__file__).resolve().parents[2]
#: The example park of ``./run demo`` (53 assets).
DEMO_PARK = REPO / "config" / "demo-park.toml"
#: The example settings file, every key with its default.
EXAMPLE_SETTINGS = REPO / "config" / "vpp.example.toml"
