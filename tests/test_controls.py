"""The musician's controls of jobs/generate.py on tiny data: a key, a density. Each test fails
when its control is ignored; what is written is read back with music21 or mido."""
from collections import Counter
from dataclasses import replace

import mido
import numpy as np
import pytest

from lstm_composer.form import KEY_NAMES, parse_key
from lstm_composer.generate import GenerateConfig, Sampling, compose
from lstm_composer.presets import PRESETS
from lstm_composer.render import PieceFiles, write_piece
from lstm_composer.sampling import KeyBalance, mode_shares, pitch_classes
from lstm_composer.tokens import note_name

tf = pytest.importorskip("tensorflow")

PIECE_PITCHES = list(range(55, 80))  # what the corpus plays, G3..G5
VOCABULARY = [note_name(p) for p in range(43, 92)]  # room for every transposition of -6..6


def keyed_model_dir(tmp_path, metre: bool = False, styles: dict[str, str] | None = None):
    """A randomised network told its beat phase and key, and a corpus of two pieces of single
    notes, "a" 120 in sixteenths and "b" 40 in quarters; its vocabulary holds every transposition
    of them. With `styles` (piece → label), the network is told each piece's label too."""
    from networks import expressive_model_dir_with

    config = replace(PRESETS["expressive"], sequence_length=12, lstm_units=(16, 16), dense_units=16, embedding_dim=6,
                     precision="float32", bass=False, given_token=False, pointer=False, dense_targets=False, phase=True,
                     metre=metre, key=True, transpose=(0, 0), styles=tuple(sorted(set((styles or {}).values()))))
    rng = np.random.default_rng(3)
    places = [(piece, step, position) for piece, step, count in (("a", 0.25, 120), ("b", 1.0, 40))
              for position in range(count)]  # one busy piece, one calm
    pitches = rng.choice(PIECE_PITCHES, len(places)).tolist()
    rows = [(piece, position, note_name(pitch), [pitch], position * step, step, int(rng.integers(40, 100)), 0)
            + ((styles[piece],) if styles else ()) for (piece, step, position), pitch in zip(places, pitches)]
    names = ("piece_id", "position", "token", "pitches", "offset", "duration", "velocity", "program") + (
        ("style",) if styles else ())
    model_dir, _ = expressive_model_dir_with(tmp_path, config, VOCABULARY, rows, names)
    return str(model_dir)


def test_parse_key_reads_the_24_keys_as_musicians_write_them():
    assert [KEY_NAMES[parse_key(text)] for text in ("D minor", "Bb major", "F# minor", "e- MAJOR", "C♯ minor")] == [
        "D minor", "B- major", "F# minor", "E- major", "C# minor"]
    for wrong in ("H major", "D", "D dorian", "Dx minor"):
        with pytest.raises(ValueError, match="a key is a tonic and major or minor"):
            parse_key(wrong)


def sounding_classes(path) -> set[int]:
    """The pitch classes of a MIDI file's note-ons, read with mido."""
    return {m.note % 12 for track in mido.MidiFile(str(path)).tracks for m in track
            if m.type == "note_on" and m.velocity}


SCALE = {"F# major": {6, 8, 10, 11, 1, 3, 5}, "E- minor": {3, 5, 6, 8, 10, 11, 0, 1, 2}}  # minor: all three forms


@pytest.mark.parametrize("name", ["F# major", "E- minor"])
def test_a_piece_asked_for_in_a_key_keeps_to_its_scale_and_says_so(tmp_path, name):
    model_dir, key = keyed_model_dir(tmp_path), parse_key(name)
    piece = compose(GenerateConfig(model_dir, length=200, seed=2, key=key))
    path = tmp_path / "piece.mid"
    write_piece(piece.events[piece.primer_length:], piece.report.to_json(), PieceFiles(str(path), musicxml=True),
                piece.metre, [(0, key)])

    assert sounding_classes(path) <= SCALE[name]
    assert [m.key for m in mido.MidiFile(str(path)).tracks[0] if m.type == "key_signature"] == [
        {"F# major": "F#", "E- minor": "Ebm"}[name]]
    from music21 import converter

    assert converter.parse(str(path.with_suffix(".musicxml"))).recurse().getElementsByClass("KeySignature")[0].sharps \
        == {"F# major": 6, "E- minor": -6}[name]
    free = compose(GenerateConfig(model_dir, length=200, seed=2))
    write_piece(free.events, free.report.to_json(), PieceFiles(str(tmp_path / "free.mid")), free.metre)
    assert not sounding_classes(tmp_path / "free.mid") <= SCALE[name]  # without the key, notes off the scale


def test_mode_shares_count_each_passage_from_its_own_tonic():
    members = pitch_classes(("C4", "E4", "G4", "D4", "F#4", "A4", "0.4.7", "2.6.9"))
    ids = np.array([0, 1, 2, 6, 3, 4, 5, 7, 0])
    keys = np.array([0, 0, 0, 0, 2, 2, 2, 2, -1])  # C major; the same a tone higher in D major; a token of no key

    shares = mode_shares(ids, keys, members)

    assert np.allclose(shares[0], [1 / 3 if step in (0, 4, 7) else 0 for step in range(12)])
    assert np.allclose(shares[1], 1 / 12)  # no passage in a minor key: even shares


def test_the_key_balance_favours_what_the_key_plays_and_the_piece_has_not():
    tokens = ("C4", "E4", "G4", "B4", "D5")
    members = pitch_classes(tokens)
    shares = mode_shares(np.array([0, 0, 1, 2]), np.zeros(4, dtype=int), members)  # major: tonic 1/2, third, fifth
    even, g_major = np.full(len(tokens), 0.2), parse_key("G major")

    assert np.allclose(KeyBalance(members, shares, 3.0).tilt(even, g_major), even)  # nothing played yet
    triad = KeyBalance(members, shares, 3.0, before=[2, 3, 4] * 10).tilt(even, g_major)  # G, B and D evenly
    assert triad[2] > triad[0] > max(triad[3], triad[4])  # G, its tonic, wanted; C, not in the key, left be
    tonic = KeyBalance(members, shares, 3.0, before=[2] * 20).tilt(even, g_major)  # G over and over
    assert tonic[2] < tonic[0] < tonic[3] == pytest.approx(tonic[4])  # B and D unplayed: wanted


def test_a_piece_in_a_key_leans_less_on_its_likeliest_class_with_the_key_balance(tmp_path):
    model_dir, key = keyed_model_dir(tmp_path), parse_key("E- minor")

    def largest_share(balance: float, seed: int) -> float:
        config = GenerateConfig(model_dir, length=200, seed=seed, key=key,
                                sampling=Sampling(key_weight=2.0, key_balance=balance))  # the key's tonic, much preferred
        piece = compose(config)
        classes = Counter(p % 12 for event in piece.events[piece.primer_length:] for p in event.pitches)
        return max(classes.values()) / sum(classes.values())

    balanced, free = ([largest_share(balance, seed) for seed in range(6)] for balance in (3.0, 0.0))
    assert all(b < f for b, f in zip(balanced, free)) and np.mean(balanced) < np.mean(free) - 0.03


def test_key_and_a_primer_file_are_refused_together(tmp_path):
    with pytest.raises(ValueError, match="--key moves a training window into the key"):
        GenerateConfig(str(tmp_path), key=3, primer_path="mine.mid")


def test_density_by_name_keeps_to_the_corpus_quartiles(tmp_path):
    model_dir = keyed_model_dir(tmp_path)

    def rate(density):
        events = compose(GenerateConfig(model_dir, length=300, seed=5, density=density)).events
        return (len(events) - 1) / (events[-1].offset - events[0].offset)

    low, high = rate("low"), rate("high")
    assert low < high, (low, high)
    with pytest.raises(ValueError, match="density is a number of onsets per quarter or one of low, medium, high"):
        GenerateConfig(model_dir, density="busy")


def test_a_primer_is_a_moment_of_the_corpus_not_a_token(tmp_path):
    # "a" holds three times the tokens of "b" in about as much time (30 quarters against 40):
    # drawn by token a window lies in "b" one time in five, drawn by time about half the time.
    from lstm_composer.model_dir import ModelDir
    from lstm_composer.primers import primer_from_corpus

    model = ModelDir(keyed_model_dir(tmp_path)).load()
    gaps = np.array(model.expression.ioi)

    def share_of_b(by_time):
        drawn = [primer_from_corpus(model.tokens(), model.vocabulary, model.config, np.random.default_rng(seed),
                                    gaps=gaps if by_time else None).detail["piece_id"] for seed in range(300)]
        return drawn.count("b") / len(drawn)

    assert share_of_b(False) < 0.3 and 0.4 < share_of_b(True) < 0.65, (share_of_b(False), share_of_b(True))


def test_a_piece_of_n_bars_has_n_bars_and_ends_held_on_its_tonic(tmp_path):
    from music21 import converter

    from lstm_composer.ending import piece_key

    model_dir = keyed_model_dir(tmp_path, metre=True)
    piece = compose(GenerateConfig(model_dir, bars=6, seed=1))
    path = tmp_path / "piece.mid"
    write_piece(piece.events, piece.report.to_json(), PieceFiles(str(path), musicxml=True), piece.metre)

    score = converter.parse(str(path.with_suffix(".musicxml")))
    assert [len(part.getElementsByClass("Measure")) for part in score.parts] == [6, 6]
    bar = piece.metre.quarters
    assert max(e.offset + e.duration for e in piece.events) == pytest.approx(6 * bar)  # nothing cut, nothing after
    last = piece.events[-1]
    assert (last.offset, last.duration) == (5 * bar, bar)  # held through the last bar
    key = piece_key(piece.events[:-1])
    assert min(last.pitches) % 12 == key % 12
    heard = mido.MidiFile(str(path))  # the MIDI file too: its lowest last note is that tonic
    notes, tick = [], 0
    for message in mido.merge_tracks(heard.tracks):
        tick += message.time
        if message.type == "note_on" and message.velocity:
            notes.append((tick, message.note))
    assert min(note for t, note in notes if t == notes[-1][0]) % 12 == key % 12
    free = compose(GenerateConfig(model_dir, length=60, seed=1))
    assert len(free.events) == 60 and free.events[-1].token == free.tokens[-1]  # without --bars, no chord added


def test_the_last_phrase_holds_the_key_the_notes_before_it_fit(tmp_path):
    from lstm_composer.conductor import Conductor, KeyChanges
    from lstm_composer.decoder import Decoder
    from lstm_composer.generate import Steering, beat_clock, choose_primer, continuation, fitting_key
    from lstm_composer.metre import PHRASE_BARS
    from lstm_composer.model_dir import ModelDir

    model = ModelDir(keyed_model_dir(tmp_path, metre=True)).load()
    # C, E and G, each for the longest duration class, fit C major.
    longest = int(np.argmax(model.expression.duration))
    triad = [[model.vocabulary.index[note_name(p)], 0, longest, 0] for p in (60, 64, 67, 72, 76)]
    assert KEY_NAMES[fitting_key(model)(np.array(triad))] == "C major"

    config = GenerateConfig(str(tmp_path), seed=0)
    primer = choose_primer(config, model, np.random.default_rng(0))
    clock, decoder = beat_clock(config, model, primer), Decoder(model.network, model.config, len(model.vocabulary))
    positions, bars, steps = primer.positions(model.vocabulary), 6, primer.last.metre.steps
    always = KeyChanges(np.tile(np.eye(24)[7], (2, 1)))  # every window a fifth up, to major

    def told_key(closing_key):
        timing = Conductor(model.config, clock.steps, len(clock.grid), primer.last.bar_position, primer.last.metre, 0,
                           primer.last.bar, 16, always, np.random.default_rng(1))
        _, times, _ = continuation(decoder, decoder.prime(positions), bars * steps, np.random.default_rng(2),
                                   Sampling(), model.vocabulary, positions,
                                   Steering(clock=clock, timing=timing, bars=bars, closing_key=closing_key))
        return timing.key, times

    asked = []
    key, times = told_key(lambda generated: asked.append(len(generated)) or 21)  # A minor
    assert key == 21 and asked  # held from the last phrase on, where the changes would go to majors only
    first_bar = times[0] - times[0] % steps
    into = [time - first_bar for time in times]
    assert into[asked[0] - 1] >= (bars - PHRASE_BARS) * steps > into[asked[0] - 2]  # at the last phrase's first onset
    assert told_key(None)[0] < 12  # without it, the piece goes on changing key


def eight_bars(path, first_velocity: int = 30) -> list[tuple[float, int, float, int]]:
    """A MIDI file of eight 4/4 bars of quarter notes in the corpus's range, each louder than the
    last, a two-note chord on every bar's first beat; its (onset, pitch, duration, velocity) notes."""
    from midi_bytes import midi_file, off, on, time_signature, track

    notes, events = [], [(0, time_signature(4, 4))]
    for beat in range(32):
        pitches = [PIECE_PITCHES[beat * 7 % len(PIECE_PITCHES)]] + ([PIECE_PITCHES[-1]] if beat % 4 == 0 else [])
        velocity = first_velocity + beat * 2
        events += [(0, on(p, velocity)) for p in pitches]
        events += [(480 if i == 0 else 0, off(p)) for i, p in enumerate(pitches)]
        notes += [(float(beat), p, 1.0, velocity) for p in pitches]
    path.write_bytes(midi_file(track(*events)))
    return sorted(notes)


def played(path) -> list[tuple[float, int, float, int]]:
    from readers import read_midi_with_mido

    return sorted((onset, pitch, duration, velocity) for onset, pitch, duration, velocity, _ in
                  read_midi_with_mido(path).notes)


def test_redo_writes_the_bars_anew_and_keeps_the_rest_note_for_note(tmp_path):
    from lstm_composer.redo import Bars

    model_dir, primer = keyed_model_dir(tmp_path, metre=True), tmp_path / "mine.mid"
    original = eight_bars(primer, first_velocity=2)  # softer than anything the network plays (40-100)
    piece = compose(GenerateConfig(model_dir, primer_path=str(primer), redo=Bars(3, 5), seed=4))
    path = tmp_path / "redone.mid"
    write_piece(piece.events, piece.report.to_json(), PieceFiles(str(path)), piece.metre)

    notes = played(path)
    kept = [n for n in notes if not 8 <= n[0] < 20]
    assert kept == [n for n in original if not 8 <= n[0] < 20]  # bars 1-2 and 6-8 as they were
    new = [n for n in notes if 8 <= n[0] < 20]
    assert new and new != [n for n in original if 8 <= n[0] < 20]
    assert max(onset + duration for onset, _, duration, _ in new) <= 20 + 1e-9  # nothing sounds into bar 6
    # Played at the loudness of the bars around it, rising from bar 2's (median velocity 12) to bar 6's (44).
    level = {bar: np.median([n[3] for n in notes if 4 * (bar - 1) <= n[0] < 4 * bar]) for bar in range(2, 7)}
    assert level[2] < np.median([n[3] for n in new]) < level[6] and level[3] < level[5]
    detail = piece.report.primer
    assert detail["redo"] == "3-5" and detail["kept_loss"] > 0 and detail["kept_loss_after_original"] > 0

    # The passage kept is the one of the candidates after which the kept bars are likeliest: the
    # first of them alone (the same seed draws it first) joins them no better.
    alone = compose(GenerateConfig(model_dir, primer_path=str(primer), redo=Bars(3, 5), seed=4, candidates=1))
    assert detail["kept_loss"] <= alone.report.primer["kept_loss"]

    # The file's last bars have nothing after them to join: no loss to report, the rest kept.
    ending = compose(GenerateConfig(model_dir, primer_path=str(primer), redo=Bars(7, 8), seed=4))
    assert ending.report.primer["kept_loss"] is None
    assert sorted((e.offset, p, e.duration, e.velocity) for e in ending.events if e.offset < 24 for p in e.pitches) \
        == [note for note in original if note[0] < 24]


def test_a_passage_is_drawn_after_hearing_how_the_kept_bars_begin():
    from lstm_composer.redo import lead_in

    before, after = np.arange(10)[:, None], np.arange(100, 130)[:, None]
    heard = lead_in(before, after, 16)  # the bars before keep the half of the window nearest the passage
    assert heard[:, 0].tolist() == [100, 101, 102, 103, 104, 105, 106, 107, 2, 3, 4, 5, 6, 7, 8, 9]
    assert lead_in(before[:3], after, 16)[:, 0].tolist() == list(range(100, 113)) + [0, 1, 2]
    assert lead_in(before, after[:0], 16) is before  # nothing after the passage: the bars before alone


def test_redo_refuses_what_it_cannot_do(tmp_path):
    from lstm_composer.redo import Bars

    for text in ("0-2", "5-3", "bars 2", ""):
        with pytest.raises(ValueError, match="is not a passage of bars such as 5-8"):
            Bars.parse(text)
    assert Bars.parse(" 5 - 8") == Bars(5, 8) and Bars.parse("4") == Bars(4, 4)
    with pytest.raises(ValueError, match="--redo writes bars of a --primer file anew"):
        GenerateConfig(str(tmp_path), redo=Bars(2, 3))
    model_dir, primer = keyed_model_dir(tmp_path, metre=True), tmp_path / "mine.mid"
    eight_bars(primer)
    for bars, reason in ((Bars(1, 2), "no note of .* comes before bar 1"), (Bars(7, 9), "has 8 bars")):
        with pytest.raises(ValueError, match=reason):
            compose(GenerateConfig(model_dir, primer_path=str(primer), redo=bars))


def test_a_primer_files_notes_start_the_output_only_when_kept(tmp_path):
    model_dir, primer = keyed_model_dir(tmp_path, metre=True), tmp_path / "mine.mid"
    original = eight_bars(primer)
    after = compose(GenerateConfig(model_dir, primer_path=str(primer), length=30, seed=1))
    kept = compose(GenerateConfig(model_dir, primer_path=str(primer), length=30, seed=1, keep_primer=True))
    assert after.primer_length == 0 and len(after.events) == len(after.tokens) == 30  # none of the file's notes
    lone = [(onset, velocity) for onset, _, _, velocity in original if onset % 4]  # no chord is in the vocabulary
    assert [(e.offset, e.velocity) for e in kept.events[:kept.primer_length]] == lone
    # The same notes after it, as far into their bar: the output without the file starts at the bar
    # of its first note.
    moved = {e.offset - f.offset for e, f in zip(kept.events[24:], after.events)}
    assert len(moved) == 1
    shift = moved.pop()
    assert shift % 4 == 0 and shift >= 28  # whole bars: those of the file before the bar the new notes start in
    assert [replace(e, offset=0.0) for e in kept.events[24:]] == [replace(e, offset=0.0) for e in after.events]


def test_the_ending_is_in_the_key_the_notes_sound_in_a_note_held_under_its_repetitions_counted_until_the_next():
    from lstm_composer.ending import with_ending
    from lstm_composer.events import Event

    scale = [60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60, 67, 72, 64, 60] * 2  # C major, a quarter each
    events = [Event(note_name(p), float(i), 1.0, 64, (p,)) for i, p in enumerate(scale)]
    # A2 struck on every sixteenth of the first four beats, each held for two beats as the network may
    # write it: a piano (and the MIDI file) sounds it until the next strike, 7.75 beats in all, not 34.
    events += [Event("A2", i / 4, 2.0, 64, (45,)) for i in range(16)]
    ended = with_ending(sorted(events, key=lambda e: e.offset), 4.0, 9)
    assert min(ended[-1].pitches) % 12 == 0 and {p % 12 for p in ended[-1].pitches} == {0, 4, 7}  # not A minor
