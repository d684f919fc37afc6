"""What the outputs share: the meter they are written in, where the hands split, where files go."""
from __future__ import annotations

from pathlib import Path

BEATS_PER_MEASURE = 4  # every output is in 4/4: MIDI's time signature, the score's bars, the roll's bar lines
MIDDLE_C = 60  # this pitch and above go on the treble staff


def prepared(path: str | Path) -> Path:
    """`path`, with its folder made."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
