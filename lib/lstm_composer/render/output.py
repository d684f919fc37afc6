"""What the outputs share: where the hands split, where files go."""
from __future__ import annotations

from pathlib import Path

MIDDLE_C = 60  # this pitch and above go on the treble staff


def prepared(path: str | Path) -> Path:
    """`path`, with its folder made."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
