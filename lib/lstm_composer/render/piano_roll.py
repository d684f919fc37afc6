"""Events → a PNG piano roll with matplotlib."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from lstm_composer.events import Event
from lstm_composer.metre import Metre
from lstm_composer.render.output import MIDDLE_C, prepared
from lstm_composer.tokens import note_name


def plot_piano_roll(events: Sequence[Event], path: str | Path, metre: Metre = Metre(4, 4)) -> Path:
    """A PNG piano roll: time in quarter lengths across, MIDI pitch up, darker is louder, a line
    at every bar of `metre`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    bars = [(event.offset, event.duration, pitch, event.velocity) for event in events for pitch in event.pitches]
    end = max((offset + duration for offset, duration, _, _ in bars), default=1.0)
    low = min((pitch for _, _, pitch, _ in bars), default=MIDDLE_C) - 1
    high = max((pitch for _, _, pitch, _ in bars), default=MIDDLE_C) + 1

    figure, axes = plt.subplots(figsize=(min(24.0, max(8.0, end / 4)), min(12.0, max(4.0, (high - low) / 6))))
    colours = plt.get_cmap("viridis_r")
    for offset, duration, pitch, velocity in bars:
        axes.barh(pitch, duration, left=offset, height=0.8, color=colours(velocity / 127),
                  alpha=0.35 + 0.65 * velocity / 127, edgecolor="black", linewidth=0.3)
    c_pitches = [p for p in range(low, high + 1) if p % 12 == 0] or [low]
    axes.set_yticks(c_pitches, [note_name(p) for p in c_pitches])
    axes.set_ylim(low - 0.5, high + 0.5)
    axes.set_xlim(0, end)
    for bar in range(int(end / float(metre.quarters)) + 1):
        axes.axvline(bar * float(metre.quarters), color="grey", linewidth=0.5)
    axes.set_xlabel("quarter lengths")
    axes.set_ylabel("pitch")
    figure.colorbar(plt.cm.ScalarMappable(cmap=colours, norm=plt.Normalize(0, 127)), ax=axes, label="velocity")
    figure.tight_layout()
    path = prepared(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
