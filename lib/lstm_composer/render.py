"""Played tokens → what musicians want: MIDI, sheet music (MusicXML), a piano roll, a WAV.

Everything starts from a list of `Event`s: a token with when it starts, how long it lasts
and how loud it is. `fixed_step` gives the paper's timing for a bare list of tokens.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

from lstm_composer.tokens import note_name, token_pitches

PAPER_STEP = 0.5  # quarter lengths between tokens, as the paper wrote them
DEFAULT_VELOCITY = 80
MIDDLE_C = 60  # this pitch and above go on the treble staff

SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)
# fluidsynth's default gain (0.2) leaves a piano at about -24 dBFS; 0.5 keeps twelve
# fortissimo voices at once below full scale.
_AUDIO_GAIN = 0.5
AUDIO_INSTALL_HINT = "run `make audio-deps` (Debian packages: fluidsynth fluid-soundfont-gm)"

# A MIDI tempo event holds microseconds per quarter note in 3 bytes: 16,777,215 at most.
_MAX_MICROS_PER_QUARTER = 0xFFFFFF
MIN_TEMPO = 60_000_000 / _MAX_MICROS_PER_QUARTER  # about 3.58 beats per minute
MAX_TEMPO = 60_000_000.0  # one microsecond per quarter note

_TICKS_PER_QUARTER = 480  # divisible by 12 and 16: the score's grid lands on whole ticks
_GRID = 12  # score positions per quarter: 16ths (3) and triplets (4) both fit
_BEATS_PER_MEASURE = 4
_MEASURE = _BEATS_PER_MEASURE * _GRID  # a 4/4 bar in 1/12 quarters
_TUPLET_DIVISIONS = (3, 6, 12)  # parts of a beat written as triplets, sextuplets, 12-tuplets
# Velocities a MIDI player gives each dynamic mark, softest first.
_DYNAMICS = (("ppp", 16), ("pp", 33), ("p", 49), ("mp", 64), ("mf", 80), ("f", 96), ("ff", 112), ("fff", 127))
_DYNAMIC_SPAN = 2.0  # quarter lengths that share one loudness when placing dynamics marks
_DYNAMIC_CHANGE = 12  # velocity change that earns a new mark: a bit under one level's width


@dataclass(frozen=True)
class Event:
    """One token as played."""

    token: str
    offset: float  # quarter lengths from the start
    duration: float  # quarter lengths (> 0)
    velocity: int  # 1..127
    voiced: tuple[int, ...] | None = None  # the MIDI pitches to play; None: the token's own (chords from C4)

    def __post_init__(self) -> None:
        token_pitches(self.token)  # a malformed token fails here, not deep inside a writer
        if self.voiced is not None and (not self.voiced or not all(0 <= p <= 127 for p in self.voiced)):
            raise ValueError(f"{self.token} at offset {self.offset}: voiced as {self.voiced}, not MIDI pitches")
        if self.offset < 0:
            raise ValueError(f"{self.token} at offset {self.offset}: offsets start at 0")
        if not self.duration > 0:
            raise ValueError(f"{self.token} at offset {self.offset}: duration {self.duration} is not positive")
        if not 1 <= self.velocity <= 127:
            raise ValueError(f"{self.token} at offset {self.offset}: velocity {self.velocity} is outside 1..127")

    @property
    def pitches(self) -> list[int]:
        return sorted(self.voiced) if self.voiced is not None else token_pitches(self.token)


def fixed_step(tokens: Sequence[str], step: float = PAPER_STEP, velocity: int = DEFAULT_VELOCITY) -> list[Event]:
    """The paper's timing: every token `step` apart, each lasting `step`, all equally loud."""
    return [Event(token, i * step, step, velocity) for i, token in enumerate(tokens)]


def write_midi(events: Sequence[Event], path: str | Path, tempo: float = 120.0, program: int = 0) -> Path:
    """A one-track Standard MIDI File: GM `program` on channel 1, `tempo` in beats per minute.

    Notes may overlap (a long note under later ones). A pitch struck again while it still
    sounds is released at the new strike, as a piano key would be.
    """
    if not 0 <= program <= 127:
        raise ValueError(f"program {program} is outside General MIDI's 0..127")
    if not MIN_TEMPO <= tempo <= MAX_TEMPO:
        raise ValueError(f"tempo {tempo:g} is outside the {MIN_TEMPO:.2f} to {MAX_TEMPO:,.0f} beats per minute "
                         f"a MIDI tempo event can hold")
    channel = 0
    notes: dict[int, list[list[int]]] = {}  # pitch → [start, end, velocity] in ticks
    for event in sorted(events, key=lambda e: e.offset):
        start = round(event.offset * _TICKS_PER_QUARTER)
        end = max(start + 1, round((event.offset + event.duration) * _TICKS_PER_QUARTER))
        for pitch in event.pitches:
            struck = notes.setdefault(pitch, [])
            if struck and struck[-1][1] > start:
                if struck[-1][0] == start:  # the same pitch twice at one onset: keep the longer, louder
                    struck[-1][1:] = [max(struck[-1][1], end), max(struck[-1][2], event.velocity)]
                    continue
                struck[-1][1] = start
            struck.append([start, end, event.velocity])

    # (tick, order, bytes): at one tick, releases go before strikes.
    messages = [(start, 1, bytes((0x90 | channel, pitch, velocity)))
                for pitch, struck in notes.items() for start, _, velocity in struck]
    messages += [(end, 0, bytes((0x80 | channel, pitch, 0)))
                 for pitch, struck in notes.items() for _, end, _ in struck]
    messages.sort(key=lambda m: (m[0], m[1], m[2][1]))
    micros_per_quarter = round(60_000_000 / tempo)
    track = bytearray()
    track += _delta(0) + b"\xff\x51\x03" + micros_per_quarter.to_bytes(3, "big")
    track += _delta(0) + b"\xff\x58\x04" + bytes((_BEATS_PER_MEASURE, 2, 24, 8))
    track += _delta(0) + bytes((0xC0 | channel, program))
    tick = 0
    for at, _, message in messages:
        track += _delta(at - tick) + message
        tick = at
    track += _delta(0) + b"\xff\x2f\x00"

    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
    header += _TICKS_PER_QUARTER.to_bytes(2, "big")
    path = _prepared(path)
    path.write_bytes(header + b"MTrk" + len(track).to_bytes(4, "big") + bytes(track))
    return path


def _delta(ticks: int) -> bytes:
    """A MIDI variable-length number."""
    out = [ticks & 0x7F]
    ticks >>= 7
    while ticks:
        out.append(0x80 | (ticks & 0x7F))
        ticks >>= 7
    return bytes(reversed(out))


def _dynamic_marks(events: Sequence[Event]) -> list[tuple[float, str]]:
    """(offset, mark) where the loudness changes noticeably: `p`, `mf`, `f` ...

    Loudness is the median velocity of the events starting in each half measure, so one
    loud note among soft ones earns no mark; a new mark needs that median to move by
    `_DYNAMIC_CHANGE` from the last mark's and to name another level.
    """
    spans: dict[int, list[Event]] = {}
    for event in sorted(events, key=lambda e: e.offset):
        spans.setdefault(int(event.offset // _DYNAMIC_SPAN), []).append(event)
    marks: list[tuple[float, str]] = []
    marked_velocity = None
    for span in sorted(spans):
        velocities = sorted(e.velocity for e in spans[span])
        median = velocities[len(velocities) // 2]
        name = _dynamic_name(median)
        if marked_velocity is None or (abs(median - marked_velocity) >= _DYNAMIC_CHANGE
                                       and name != marks[-1][1]):
            marks.append((spans[span][0].offset, name))
            marked_velocity = median
    return marks


def _dynamic_name(velocity: int) -> str:
    return min(_DYNAMICS, key=lambda level: abs(level[1] - velocity))[0]


def write_musicxml(events: Sequence[Event], path: str | Path, tempo: float = 120.0, program: int = 0) -> Path:
    """Sheet music a pianist can read: a grand staff in 4/4, split at middle C.

    Offsets and durations are first rounded to the nearest 1/12 quarter (16ths and
    triplets), so every rhythm can be written down; each beat is then written in the
    plainest division that holds it: quarters, eighths, 16ths, triplets, sextuplets.
    """
    from music21 import clef, dynamics, instrument, layout, metadata, stream, tempo as m21tempo

    treble_notes, bass_notes = _staff_notes(events)
    end = max((start + length for start, length, _ in treble_notes + bass_notes), default=0)
    measures = max(1, -(-end // _MEASURE))  # rounded up, at least one
    treble = _staff(treble_notes, measures, clef.TrebleClef(), instrument.instrumentFromMidiProgram(program))
    bass = _staff(bass_notes, measures, clef.BassClef(), instrument.instrumentFromMidiProgram(program))

    mark = m21tempo.MetronomeMark(number=tempo, referent=1.0)
    mark.placement = "above"
    treble.getElementsByClass(stream.Measure).first().insert(0, mark)
    # Each hand gets its own dynamics, below its staff: the hands often play at different levels.
    hands = ([e for e in events if max(e.pitches) >= MIDDLE_C], [e for e in events if min(e.pitches) < MIDDLE_C])
    for staff, hand in zip((treble, bass), hands):
        measures_of_staff = list(staff.getElementsByClass(stream.Measure))
        for offset, name in _dynamic_marks(hand):
            number, at = divmod(round(offset * _GRID), _MEASURE)
            dynamic = dynamics.Dynamic(name)
            dynamic.placement = "below"
            # In a bar of two voices the mark goes into the voice that strikes a note there:
            # outside the voices it would be written at the bar's start, and in the middle
            # of a rest at the rest's end.
            bar = measures_of_staff[number]
            at = Fraction(at, _GRID)
            holder = next((v for v in bar.voices if any(n.offset == at for n in v.notes)), bar)
            holder.insert(at, dynamic)

    score = stream.Score()
    score.metadata = metadata.Metadata(title=Path(path).stem, composer="lstm-composer")
    score.insert(0, treble)
    score.insert(0, bass)
    score.insert(0, layout.StaffGroup([treble, bass], symbol="brace", barTogether=True))
    path = _prepared(path)
    score.write("musicxml", fp=str(path))
    return path


def _staff_notes(events: Sequence[Event]) -> tuple[list, list]:
    """(treble, bass): each a sorted list of (start, length, pitches) in 1/12 quarters.

    Onsets and releases go to the nearest 1/12 quarter. A release then moves to the grid
    its beat's onsets use (eighths at least): a pianist reads when notes start, and a
    release 1/12 early should not turn a beat of eighths into a tuplet. Pitches struck at
    one onset for the same length on one staff become one chord.
    """
    staves: tuple[list, list] = ([], [])
    for event in events:
        start = round(event.offset * _GRID)
        end = max(start + 1, round((event.offset + event.duration) * _GRID))
        for pitch in event.pitches:
            staves[0 if pitch >= MIDDLE_C else 1].append((start, end, pitch))
    treble, bass = [], []
    for notes, written in zip(staves, (treble, bass)):
        onset_divisions = _beat_divisions({start for start, _, _ in notes})
        chords: dict[tuple[int, int], set[int]] = {}
        for start, end, pitch in notes:
            end = max(_release_on_grid(end, onset_divisions), _release_on_grid(start + 1, onset_divisions, up=True))
            chords.setdefault((start, end - start), set()).add(pitch)
        written.extend(sorted((start, length, sorted(pitches)) for (start, length), pitches in chords.items()))
    return treble, bass


def _release_on_grid(end: int, onset_divisions: dict[int, int], up: bool = False) -> int:
    """`end` rounded (or rounded `up`) to the grid of its beat's onsets, eighths or finer."""
    beat, inside = divmod(end, _GRID)
    unit = _GRID // max(2, onset_divisions.get(beat, 1))
    return beat * _GRID + (inside + (unit - 1 if up else unit // 2)) // unit * unit


def _voices(notes: list) -> list[list]:
    """Split one staff's notes into at most two voices, the way a pianist reads held notes.

    A note that sounds less than a beat into the next onset on its staff is legato and is
    written up to that onset. A note held longer keeps its written length, and the notes
    under it go into a second voice. Where both voices hold on, the one that would end
    first is cut short: a third voice would be harder to read than a shortened note.
    Notes struck together whose lengths differ by less than a beat are one chord, of the
    shorter length.
    """
    onsets = sorted({start for start, _, _ in notes})
    next_onset = dict(zip(onsets, onsets[1:]))
    voices: list[list] = [[], []]  # each a list of [start, length, pitches]

    def overhang(voice: list, start: int) -> int:
        return voice[-1][0] + voice[-1][1] - start if voice else 0

    for start, length, pitches in notes:
        if start in next_onset and 0 < start + length - next_onset[start] < _GRID:
            length = next_onset[start] - start
        together = [v for v in voices if v and v[-1][0] == start]
        close = [v for v in together if abs(v[-1][1] - length) < _GRID]
        if close or (together and all(overhang(v, start) > 0 for v in voices)):
            last = (close or together)[0][-1]
            last[1] = min(last[1], length)
            last[2] = sorted(set(last[2]) | set(pitches))
            continue
        free = [v for v in voices if overhang(v, start) <= 0]
        voice = free[0] if free else min(voices, key=lambda v: overhang(v, start))
        if not free:
            voice[-1][1] = start - voice[-1][0]
        voice.append([start, length, pitches])
    return [v for v in voices if v]


def _staff(notes: list, measures: int, staff_clef, staff_instrument):
    """One PartStaff in 4/4: measures of written notes and rests, tied across beats and bars."""
    from music21 import clef, meter, stream
    from music21.stream import makeNotation

    voices = [_written(voice, measures) for voice in _voices(notes)] or [_written([], measures)]
    staff = stream.PartStaff()
    for number in range(measures):
        measure = stream.Measure(number=number + 1)
        if number == 0:
            measure.insert(0, staff_instrument)
            measure.insert(0, staff_clef)
            measure.insert(0, meter.TimeSignature(f"{_BEATS_PER_MEASURE}/4"))
        held = [voice[number] for voice in voices if any(not e.isRest for e in voice[number])]
        if len(held) < 2:  # one voice in this bar reads better than two
            for element in (held[0] if held else voices[0][number]):
                measure.insert(element.offset, element)
        else:
            # The higher voice has stems up; the voice with fewer notes (the held one) hides its rests.
            held.sort(key=lambda elements: -_mean_pitch(elements))
            sparser = min(range(2), key=lambda i: sum(not e.isRest for e in held[i]))
            for i, elements in enumerate(held):
                voice = stream.Voice(id=str(i + 1))
                for element in elements:
                    if element.isRest:
                        element.style.hideObjectOnPrint = i == sparser
                    else:
                        element.stemDirection = "up" if i == 0 else "down"
                    voice.insert(element.offset, element)
                measure.insert(0, voice)
        staff.append(measure)
    staff.makeNotation(inPlace=True)
    for voice in staff.recurse().getElementsByClass(stream.Voice):  # makeNotation brackets only unvoiced bars
        makeNotation.makeTupletBrackets(voice, inPlace=True)
    _octave_lines(staff, treble=isinstance(staff_clef, clef.TrebleClef))
    return staff


def _octave_lines(staff, treble: bool) -> None:
    """Write runs of notes from E6 up an octave lower under an 8va line (from A1 down: 8vb).

    Beyond those a note needs three ledger lines or more. (MuseScore 3 labels a 15ma line
    "8", so there is none: the top of the piano still gets its ledger lines under 8va.)
    """
    from music21 import spanner

    def shifted(element) -> bool:
        pitches = [p.midi for p in element.pitches]
        return min(pitches) >= 88 if treble else max(pitches) <= 33

    runs: list[list] = [[]]
    for element in staff.flatten().notes:
        if shifted(element):
            runs[-1].append(element)
        elif runs[-1]:
            runs.append([])
    for elements in filter(None, runs):
        for element in elements:
            for pitch in element.pitches:
                pitch.octave += -1 if treble else 1
        staff.insert(0, spanner.Ottava(*elements, type="8va" if treble else "8vb",
                                       placement="above" if treble else "below"))


def _mean_pitch(elements: list) -> float:
    pitches = [p.midi for e in elements if not e.isRest for p in e.pitches]
    return sum(pitches) / len(pitches)


def _written(notes: list, measures: int) -> list[list]:
    """One voice's notes as music21 notes, chords and rests, a list for each measure.

    Gaps become rests. Notes are split, and tied, into values a pianist reads: no value
    hides a beat boundary unless it starts on a beat of plain (non-tuplet) beats, and none
    hides the middle of the bar unless it starts the bar.
    """
    from music21 import tie

    spans: list[tuple[int, int, list[int] | None]] = []
    time = 0
    for start, length, pitches in notes:
        if start > time:
            spans.append((time, start, None))
        spans.append((start, start + length, pitches))
        time = start + length
    spans.append((time, measures * _MEASURE, None))
    divisions = _beat_divisions({point for start, end, _ in spans for point in (start, end)})

    bars: list[list] = [[] for _ in range(measures)]
    for start, end, pitches in spans:
        pieces = []
        at = start
        while at < end:
            length, division = _written_value(at, end, divisions, rest=pitches is None)
            pieces.append((at, length, division))
            at += length
        for i, (at, length, division) in enumerate(pieces):
            element = _element(pitches, length, division)
            if pitches is not None and len(pieces) > 1:
                element.tie = tie.Tie("start" if i == 0 else "stop" if i == len(pieces) - 1 else "continue")
            element.offset = Fraction(at % _MEASURE, _GRID)
            bars[at // _MEASURE].append(element)
    return bars


def _beat_divisions(points: set[int]) -> dict[int, int]:
    """For each beat with a boundary inside it: the fewest equal parts that hold them all."""
    inside_beats: dict[int, set[int]] = {}
    for point in points:
        beat, inside = divmod(point, _GRID)
        if inside:
            inside_beats.setdefault(beat, set()).add(inside)
    return {beat: next(d for d in (2, 4, 3, 6, 12) if all(p % (_GRID // d) == 0 for p in inside))
            for beat, inside in inside_beats.items()}


def _written_value(at: int, end: int, divisions: dict[int, int], rest: bool) -> tuple[int, int]:
    """(length, beat division) of the next written value from `at` towards `end`, in 1/12 quarters."""
    beat, inside = divmod(at, _GRID)
    in_bar = at % _MEASURE
    if inside == 0:
        # Values longer than a beat start on a beat, cover only plain beats, and cross the
        # middle of the bar only from its start; rests longer than a beat have no dots.
        longer = (_MEASURE, 2 * _GRID) if rest else (_MEASURE, 3 * _GRID, 2 * _GRID, 3 * _GRID // 2)
        for length in longer:
            span_end = at + length
            if (span_end <= end and in_bar + length <= _MEASURE
                    and (in_bar == 0 or not in_bar < _MEASURE // 2 < in_bar + length)
                    and all(divisions.get(b, 1) not in _TUPLET_DIVISIONS
                            for b in range(beat, -(-span_end // _GRID)))):
                return length, 1
    division = divisions.get(beat, 1)
    unit = _GRID // division
    units = (min(end, (beat + 1) * _GRID) - at) // unit
    written = max(n for n in (1, 2, 3, 4, 6, 8) if n <= units)  # plain or dotted values
    return written * unit, division


def _element(pitches: list[int] | None, length: int, division: int):
    """A music21 note, chord or rest `length` 1/12 quarters long, in a beat of `division` parts."""
    from music21 import chord, duration, note

    if division in _TUPLET_DIVISIONS:
        # Three in the time of two: written values are 3/2 of what sounds.
        written = duration.Duration(Fraction(length * 3, _GRID * 2))
        unit_type = duration.Duration(Fraction(3, division * 2)).type
        written.appendTuplet(duration.Tuplet(division, division * 2 // 3, unit_type, unit_type))
    else:
        written = duration.Duration(Fraction(length, _GRID))
    if pitches is None:
        element = note.Rest()
    elif len(pitches) == 1:
        element = note.Note(note_name(pitches[0]))
    else:
        element = chord.Chord([note_name(p) for p in pitches])
    element.duration = written
    return element


def plot_piano_roll(events: Sequence[Event], path: str | Path) -> Path:
    """A PNG piano roll: time in quarter lengths across, MIDI pitch up, darker is louder."""
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
    for measure in range(0, int(end) + 1, _BEATS_PER_MEASURE):
        axes.axvline(measure, color="grey", linewidth=0.5)
    axes.set_xlabel("quarter lengths")
    axes.set_ylabel("pitch")
    figure.colorbar(plt.cm.ScalarMappable(cmap=colours, norm=plt.Normalize(0, 127)), ax=axes, label="velocity")
    figure.tight_layout()
    path = _prepared(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


class AudioUnavailable(Exception):
    """No WAV could be rendered; the message says what is missing and how to get it."""


def write_audio(midi_path: str | Path, wav_path: str | Path, soundfont: str | None = None) -> Path:
    """Render a MIDI file to a 44.1 kHz WAV with the `fluidsynth` command and a GM soundfont.

    Without `soundfont`, the first of `SOUNDFONTS` that exists is used.
    """
    fluidsynth = shutil.which("fluidsynth")
    if fluidsynth is None:
        raise AudioUnavailable(f"the `fluidsynth` command is not on PATH: {AUDIO_INSTALL_HINT}")
    if soundfont is None:
        soundfont = next((sf for sf in SOUNDFONTS if Path(sf).is_file()), None)
        if soundfont is None:
            raise AudioUnavailable(f"no General MIDI soundfont found (looked for {', '.join(SOUNDFONTS)}): "
                                   f"{AUDIO_INSTALL_HINT}, or pass a .sf2 file")
    elif not Path(soundfont).is_file():
        raise AudioUnavailable(f"soundfont {soundfont} does not exist")
    with open(soundfont, "rb") as header:
        riff = header.read(12)
    if riff[:4] != b"RIFF" or riff[8:12] != b"sfbk":  # fluidsynth would render silence without one
        raise AudioUnavailable(f"{soundfont} is not a SoundFont 2 (.sf2) file")
    wav_path = _prepared(wav_path)
    wav_path.unlink(missing_ok=True)
    command = [fluidsynth, "-ni", "-q", "-g", str(_AUDIO_GAIN), "-T", "wav", "-F", str(wav_path),
               "-r", "44100", str(soundfont), str(midi_path)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip()[-800:]
        raise AudioUnavailable(f"fluidsynth failed (exit {result.returncode}) on {midi_path}: {tail}")
    if not wav_path.is_file() or wav_path.stat().st_size <= 44:  # a WAV header and no samples
        tail = result.stderr.strip()[-800:]
        raise AudioUnavailable(f"fluidsynth wrote no audio to {wav_path} from {midi_path}: {tail}")
    return wav_path


def _prepared(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
