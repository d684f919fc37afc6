"""How playable a score reads: MusicXML files (ours, or real pieces written by the same code)
measured with music21.

    python bench/score_check.py output/generated.musicxml ...
    python bench/score_check.py --midi ../shared/midi/piano-midi/midis/.../piece.mid:3 ...

Per file: notes written beyond three ledger lines outside an octave line (8va, 8vb) and under one
(MuseScore 3 has no 15ma line: the top octave of the piano keeps some under 8va), the octave
lines and those over one or two onsets (a line a pianist meets every beat or two), dynamics
marks and hairpins per bar, and accidentals, rests (but whole-bar ones) and ties per written
note. `--midi FILE[:N]` writes a MIDI file's notes, as the parse job reads them, as a score
first (bars of N quarters, or in the file's first metre; the key signatures of its passages),
as a real piece's page to compare with.
"""
import argparse
import re
import tempfile
from pathlib import Path

import mido


def diatonic(pitch) -> int:
    return pitch.diatonicNoteNum  # C4 = 29, one step per letter name


def beyond_three_ledger_lines(score) -> tuple[int, int, int]:
    """(notes more than three ledger lines off their staff under no octave line, those under
    one, as written there, and all notes). music21 reads the notes under a line at the pitch
    they sound."""
    from music21 import pitch as m21pitch, spanner

    treble_top, treble_bottom = diatonic(m21pitch.Pitch("F5")), diatonic(m21pitch.Pitch("E4"))
    bass_top, bass_bottom = diatonic(m21pitch.Pitch("A3")), diatonic(m21pitch.Pitch("G2"))
    shift = {id(element): -7 if line.type == "8va" else 7  # diatonic steps from sounding to written
             for line in score.recurse().getElementsByClass(spanner.Ottava) for element in line.getSpannedElements()}
    outside = under = total = 0
    for part, (top, bottom) in zip(score.parts, ((treble_top, treble_bottom), (bass_top, bass_bottom))):
        for element in part.recurse().notes:
            for sounding in element.pitches:
                total += 1
                written = diatonic(sounding) + shift.get(id(element), 0)
                if max(written - top, bottom - written, 0) // 2 > 3:
                    under += id(element) in shift
                    outside += id(element) not in shift
    return outside, under, total


def octave_lines(score) -> tuple[int, int]:
    """(octave lines, those over no more than two onsets)."""
    from music21 import spanner

    lines = list(score.recurse().getElementsByClass(spanner.Ottava))
    onsets = [len({element.getOffsetInHierarchy(score) for element in line.getSpannedElements()}) for line in lines]
    return len(lines), sum(count <= 2 for count in onsets)


def measure(path: Path) -> str:
    from music21 import converter

    score = converter.parse(str(path))
    outside, under, notes = beyond_three_ledger_lines(score)
    bars = max(len(part.getElementsByClass("Measure")) for part in score.parts)
    lines, short = octave_lines(score)
    marks = len(list(score.recurse().getElementsByClass("Dynamic")))
    hairpins = len(list(score.recurse().getElementsByClass("DynamicWedge")))
    xml = path.read_text()
    written = len(re.findall(r"<note\b(?:(?!</note>).)*<pitch>", xml, re.S))
    accidentals = len(re.findall(r"<accidental\b", xml))
    rests = len(re.findall(r"<rest\b", xml)) - len(re.findall(r'<rest\b[^>]*measure="yes"', xml))  # not whole bars
    tied = len(re.findall(r'<tie type="start"', xml))
    return (f"{path.name}: {bars} bars, {notes} notes; beyond three ledger lines outside an octave line: {outside}, "
            f"under one (as written): {under}; octave lines {lines} ({short} over one or two onsets); "
            f"dynamics marks per bar {marks / bars:.2f}, hairpins {hairpins / bars:.2f}; "
            f"accidentals per note {accidentals / written:.3f}; rests per note {rests / written:.3f}, "
            f"tied on {tied / written:.3f}")


def midi_events(path: str):
    """A MIDI file's notes as the parse job reads them (`midi.read_midi`: a note-off ends the
    earliest sounding note of its pitch), which is what a model of the file learns from."""
    from lstm_composer.events import Event
    from lstm_composer.midi import read_midi
    from lstm_composer.tokens import note_name

    song = read_midi(Path(path).read_bytes())
    quarter = song.ticks_per_quarter
    return [Event(note_name(note.pitch), note.start / quarter, (note.end - note.start) / quarter, note.velocity,
                  (note.pitch,)) for note in song.notes if note.end > note.start]


def first_metre(path: str):
    """The file's first time signature (mido), 4/4 where it has none."""
    from lstm_composer.metre import Metre

    found = [m for track in mido.MidiFile(path).tracks for m in track if m.type == "time_signature"]
    return Metre(found[0].numerator, found[0].denominator) if found else Metre(4, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scores", nargs="*", type=Path, help="MusicXML files")
    parser.add_argument("--midi", nargs="*", default=[], metavar="FILE[:N]",
                        help="MIDI files to write as scores first (in bars of N quarters; default: the file's metre)")
    args = parser.parse_args()
    for score in args.scores:
        print(measure(score), flush=True)
    from lstm_composer.metre import Metre
    from lstm_composer.render.score import write_musicxml

    with tempfile.TemporaryDirectory() as scratch:
        for given in args.midi:
            path, _, quarters = given.partition(":")
            metre = Metre(int(quarters), 4) if quarters else first_metre(path)
            out = Path(scratch) / (Path(path).stem + ".musicxml")
            write_musicxml(midi_events(path), str(out), metre=metre)
            print(measure(out), flush=True)


if __name__ == "__main__":
    main()
