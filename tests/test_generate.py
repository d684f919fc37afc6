"""Generation: the step decoder against Keras, sampling controls, primers, the copy report."""
import json
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ROOT
from midi_bytes import midi_file, off, on, track
from networks import randomised
from readers import (SCORE_GRID, assert_midi_plays, musicxml_title, read_midi_with_mido, read_musicxml, read_wav,
                     sounding)
from lstm_composer.generate import GenerateConfig, GenerationError, Sampling, compose
from lstm_composer.model_dir import ModelDir
from lstm_composer.originality import longest_copy, longest_cycle
from lstm_composer.presets import PRESETS
from lstm_composer.sampling import sample
from lstm_composer.tables import TokenStream
from lstm_composer.tokens import Vocabulary, note_name

tf = pytest.importorskip("tensorflow")

PITCHES = list(range(55, 80))  # G3..G5
TOKENS = [note_name(p) for p in PITCHES] + ["0.4.7", "2.5.9"]
ALL = Sampling(top_p=None)  # every token may be drawn


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A model directory as training writes it, with random weights and a three-piece corpus
    whose pieces are scales and arpeggios of the vocabulary's tokens."""
    from lstm_composer.model import build_model

    root = tmp_path_factory.mktemp("generate")
    vocabulary = Vocabulary(TOKENS)
    pieces = {"scale": [note_name(p) for p in PITCHES] * 4,
              "arpeggio": [note_name(p) for p in PITCHES[::4]] * 10 + ["0.4.7", "2.5.9"] * 5,
              "mixed": [TOKENS[(i * 7) % len(TOKENS)] for i in range(150)]}
    rows = [(piece, position, token) for piece, tokens in pieces.items() for position, token in enumerate(tokens)]
    table = pa.table({name: list(column) for name, column in zip(("piece_id", "position", "token"), zip(*rows))})
    (root / "corpus/notes").mkdir(parents=True)
    pq.write_table(table, root / "corpus/notes/part-0.parquet")

    config = replace(PRESETS["tiny"], sequence_length=12, input_encoding="embedding", embedding_dim=8)
    directory = root / "model"
    directory.mkdir()
    randomised(build_model(config, len(vocabulary)), seed=3).save(directory / "model.keras")
    (directory / "vocab.json").write_text(vocabulary.to_json())
    (directory / "config.json").write_text(json.dumps({"model": config.to_dict(),
                                                      "corpus_path": str(root / "corpus")}))
    return directory


def test_same_seed_same_piece_other_seed_other_piece(model_dir):
    first = compose(GenerateConfig(str(model_dir), length=60, seed=5))
    again = compose(GenerateConfig(str(model_dir), length=60, seed=5))
    other = compose(GenerateConfig(str(model_dir), length=60, seed=6))
    assert first.tokens == again.tokens and first.report == again.report
    assert len(first.tokens) == 60 and first.primer_length == 0
    assert other.tokens != first.tokens


@pytest.mark.parametrize("refresh", [None, 5])
def test_top_k_one_is_the_argmax_whatever_the_seed_and_temperature(model_dir, refresh):
    # (no loop guard, token cap or copy guard: Keras below has none)
    def greedy_at(temperature):
        return compose(GenerateConfig(str(model_dir), length=40, seed=1, max_copy=None,
                                      sampling=Sampling(temperature=temperature, top_k=1, loop_limit=None,
                                                        repeat_quantile=None, refresh=refresh)))

    greedy, hot = greedy_at(1.0), greedy_at(3.0)
    assert greedy.tokens == hot.tokens

    # Keras itself, not the step decoder: the sequence so far (the training window the report
    # names, then every token chosen) through the trained weights, then the argmax. The whole
    # sequence when the state is carried on; with a refresh, from the window of the last
    # rebuild on, which every `refresh` tokens becomes the last `sequence_length` tokens.
    model = ModelDir(str(model_dir)).load()
    any_length = tf.keras.models.clone_model(model.network, input_tensors=tf.keras.Input(shape=(None,), dtype="int32"))
    any_length.set_weights(model.network.get_weights())
    detail = greedy.report.primer
    table = pq.read_table(model_dir.parent / "corpus/notes").to_pylist()
    piece = [row["token"] for row in sorted(table, key=lambda row: row["position"]) if row["piece_id"] == detail["piece_id"]]
    window = model.config.sequence_length
    sequence = model.vocabulary.encode(piece[detail["position"]:detail["position"] + window])
    begin = 0
    for i in range(40):
        probabilities = any_length(np.array([sequence[begin:]]), training=False).numpy()[0]
        sequence.append(int(np.argmax(probabilities)))
        if refresh and (i + 1) % refresh == 0:
            begin = len(sequence) - window
    assert greedy.tokens == model.vocabulary.decode(sequence[window:])
    if refresh:  # the two ways part
        carried = compose(GenerateConfig(str(model_dir), length=40, seed=1,
                                         sampling=Sampling(top_k=1, loop_limit=None, refresh=None)))
        assert carried.tokens != greedy.tokens


def test_a_corpus_primer_comes_from_a_piece_the_training_run_did_not_hold_out(model_dir, tmp_path):
    held_out = tmp_path / "model"
    shutil.copytree(model_dir, held_out)
    settings = json.loads((held_out / "config.json").read_text())
    (held_out / "config.json").write_text(json.dumps({**settings, "validation_pieces": ["scale", "mixed"]}))
    for directory, expected in ((model_dir, {"scale", "arpeggio", "mixed"}), (held_out, {"arpeggio"})):
        model = ModelDir(str(directory)).load()
        drawn = {compose(GenerateConfig(str(directory), length=1, seed=seed), model).report.primer["piece_id"]
                 for seed in range(30)}
        assert drawn == expected, directory


def test_sampling_cuts():
    probabilities = np.array([0.05, 0.5, 0.3, 0.15])
    rng = np.random.default_rng(0)
    assert {sample(probabilities, rng, Sampling(top_k=2)) for _ in range(300)} == {1, 2}
    assert {sample(probabilities, rng, Sampling(top_p=0.75)) for _ in range(300)} == {1, 2}
    assert {sample(probabilities, rng, Sampling(top_p=0.5)) for _ in range(100)} == {1}
    assert {sample(probabilities, rng, Sampling(top_p=None)) for _ in range(500)} == {0, 1, 2, 3}
    cold = [sample(probabilities, rng, Sampling(temperature=0.2)) for _ in range(500)]
    assert cold.count(1) > 450
    with pytest.raises(ValueError, match="top_p"):
        Sampling(top_p=0)
    with pytest.raises(ValueError, match="refresh must be at least 1"):
        Sampling(refresh=0)


def test_sampling_draws_each_token_as_often_as_its_share_says():
    probabilities = np.array([0.05, 0.5, 0.3, 0.15])
    rng = np.random.default_rng(0)

    def shares(sampling: Sampling, draws: int = 10_000) -> np.ndarray:
        return np.bincount([sample(probabilities, rng, sampling) for _ in range(draws)], minlength=4) / draws

    np.testing.assert_allclose(shares(Sampling(top_p=None)), probabilities, atol=0.02)
    np.testing.assert_allclose(shares(Sampling(top_k=2)), [0, 0.5 / 0.8, 0.3 / 0.8, 0], atol=0.02)
    np.testing.assert_allclose(shares(Sampling(top_p=0.9)), [0, 0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95], atol=0.02)
    squared = probabilities ** 2  # temperature 0.5: each probability to the power 1 / 0.5, renormalised
    np.testing.assert_allclose(shares(Sampling(temperature=0.5, top_p=None)), squared / squared.sum(), atol=0.02)


def test_the_nucleus_is_taken_among_notes_and_among_chords_each_on_its_own():
    # Two likely notes and five chords of 0.04 each: one cut at 0.7 keeps the two notes only; a
    # cut per kind keeps the notes and four of the chords, so the chords keep their share.
    probabilities = np.array([0.5, 0.3, 0.04, 0.04, 0.04, 0.04, 0.04])
    chords = np.array([False, False, True, True, True, True, True])
    rng = np.random.default_rng(0)
    drawn = np.bincount([sample(probabilities, rng, Sampling(top_p=0.7), chords) for _ in range(10_000)],
                        minlength=7) / 10_000
    np.testing.assert_allclose(drawn, np.append(probabilities[:6], 0) / 0.96, atol=0.02)
    assert {sample(probabilities, rng, Sampling(top_p=0.7)) for _ in range(300)} == {0, 1}


def test_a_primer_files_tokens_start_the_output(model_dir, tmp_path):
    # C4 (60) is in the vocabulary, C2 (36) is not and is reported; a chord of 0.4.7 is in.
    notes = [(60, 0), (62, 240), (36, 480), (64, 720), (67, 960)]
    events = []
    clock = 0
    for pitch, tick in notes:
        events.append((tick - clock, on(pitch)))
        events.append((200, off(pitch)))
        clock = tick + 200
    events += [(40, on(48)), (0, on(52)), (0, on(55)), (240, off(48)), (0, off(52)), (0, off(55))]
    primer = tmp_path / "primer.mid"
    primer.write_bytes(midi_file(track(*events)))

    piece = compose(GenerateConfig(str(model_dir), length=20, seed=0, primer_path=str(primer), keep_primer=True))
    assert piece.tokens[:5] == ["C4", "D4", "E4", "G4", "0.4.7"] and piece.primer_length == 5
    assert len(piece.tokens) == 25
    assert piece.report.primer["skipped_tokens"] == ["C2"] and piece.report.primer["skipped"] == 1

    (tmp_path / "noise.mid").write_bytes(b"not midi at all")
    with pytest.raises(GenerationError, match="no notes to start from"):
        compose(GenerateConfig(str(model_dir), length=5, primer_path=str(tmp_path / "noise.mid")))


def test_copy_report_finds_a_planted_copy():
    rng = np.random.default_rng(0)
    pieces = [rng.integers(0, 40, size=n).astype(np.int32) for n in (300, 500, 200)]
    stream = TokenStream(ids=np.concatenate(pieces), bounds=np.cumsum([0, 300, 500, 200]),
                         piece_ids=["a", "b", "c"])
    generated = rng.integers(40, 80, size=200).astype(np.int32)  # tokens the corpus never has
    assert longest_copy(generated, stream).length == 0
    generated[70:87] = pieces[1][123:140]  # 17 tokens of piece b from position 123
    copy = longest_copy(generated, stream)
    assert (copy.length, copy.piece_id, copy.piece_position, copy.output_position) == (17, "b", 123, 70)

    # A run that crosses from one piece into the next is not one copy.
    generated[100:110] = np.concatenate([pieces[0][-5:], pieces[1][:5]])
    assert longest_copy(generated, stream).length == 17


def test_longest_cycle():
    assert longest_cycle(np.array([1, 2, 3, 4, 5])) is None
    looped = np.array([9, 8, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 7, 7, 7, 6])
    cycle = longest_cycle(looped)
    assert (cycle.period, cycle.start, cycle.span) == (3, 2, 10)
    stuck = np.array([5] * 30 + [1, 2])
    assert (longest_cycle(stuck).period, longest_cycle(stuck).span) == (1, 30)


def test_max_copy_keeps_every_run_copied_from_the_corpus_under_it(model_dir):
    free = compose(GenerateConfig(str(model_dir), length=60, seed=3, max_copy=None, sampling=ALL))
    strict = free.report.longest_copy.length - 1
    assert strict >= 1, "the random model copies nothing: choose another seed"
    bounded = compose(GenerateConfig(str(model_dir), length=60, seed=3, max_copy=strict, sampling=ALL))
    assert bounded.report.longest_copy.length <= strict


def test_generate_job_writes_midi_report_score_roll_and_audio(model_dir, tmp_path):
    output = tmp_path / "out/piece.mid"
    result = subprocess.run(
        [sys.executable, str(ROOT / "jobs/generate.py"), "--model-dir", str(model_dir), "--length", "32",
         "--seed", "3", "--top-p", "0.9", "--refresh", "7", "--tempo", "90", "--program", "40", "--output",
         str(output), "--musicxml", "--plot", "--audio"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "longest run copied from one corpus piece" in result.stdout
    report = json.loads(output.with_suffix(".report.json").read_text())
    assert report["generated_tokens"] == 32 and report["sampling"]["top_p"] == 0.9
    assert report["sampling"]["refresh"] == 7

    # What the job wrote is the piece the library composes for the same flags, read back by
    # readers of their own: mido, music21, wave.
    events = compose(GenerateConfig(str(model_dir), length=32, seed=3, sampling=Sampling(top_p=0.9, refresh=7))).events
    assert len(events) == 32
    assert_midi_plays(output, events, tempo=90, program=40)

    score_path = output.with_suffix(".musicxml")
    _, treble, bass = read_musicxml(score_path)
    assert musicxml_title(score_path) == "piece"
    # Every note once, in eighths; above E4 in the treble, below A3 in the bass (between them, a
    # lone note goes to the hand that played nearest it).
    assert sorted(sounding(treble) + sounding(bass)) == sorted(
        (p, round(e.offset * SCORE_GRID), round(e.duration * SCORE_GRID)) for e in events for p in e.pitches)
    assert min(p for p, _, _ in sounding(treble)) >= 57 and max(p for p, _, _ in sounding(bass)) <= 64
    assert output.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"

    audio, midi_seconds = read_wav(output.with_suffix(".wav")), read_midi_with_mido(output).seconds
    assert midi_seconds == pytest.approx(32 * 0.5 * 60 / 90)
    assert midi_seconds <= audio.seconds <= midi_seconds + 3.5
    assert min(audio.loudness(e.offset * 60 / 90, (e.offset + e.duration) * 60 / 90) for e in events) > 100

    bad = subprocess.run([sys.executable, str(ROOT / "jobs/generate.py"), "--model-dir", str(tmp_path),
                          "--output", str(tmp_path / "x.mid")], capture_output=True, text=True)
    assert bad.returncode != 0 and "config.json is missing" in bad.stderr


def test_expression_classes_round_trip_within_half_a_step():
    from lstm_composer.expression import Expression

    expression = Expression()
    rng = np.random.default_rng(0)
    values = np.array(expression.duration)
    x = rng.uniform(values[0], values[-1], 2000)
    back = values[expression.classes(np.zeros(2000), x, np.full(2000, 64))[:, 1]]
    gaps = np.diff(values)
    step = np.concatenate([[gaps[0]], np.maximum(gaps[:-1], gaps[1:]), [gaps[-1]]])  # around each value
    assert np.all(np.abs(back - x) <= step[np.searchsorted(values, back)] / 2 + 1e-9)
    assert np.array_equal(values[expression.classes(np.zeros(len(values)), values, np.ones(len(values)))[:, 1]],
                          values)  # grid values map to themselves
    held = values[expression.classes(np.zeros(3), np.array([30.0, 70.0, 300.0]), np.ones(3))[:, 1]]
    assert held.tolist() == [32.0, 64.0, 64.0]  # a chord held for bars is held, past sixteen bars clipped

    velocities = np.arange(1, 128)
    played = np.array(expression.velocity)[expression.classes(np.zeros(127), np.ones(127), velocities)[:, 2]]
    assert np.all(np.abs(played - velocities) <= 127 / 16 + 0.5)
    assert len(set(played)) == 8

    offsets = np.array([0.0, 0.5, 0.75, 1.75, 1.75 + 1 / 3, 10.0])
    gaps = np.array(expression.ioi)[expression.classes(offsets, np.ones(6), np.ones(6))[:, 0]]
    assert gaps.tolist() == [0.0, 0.5, 0.25, 1.0, pytest.approx(1 / 3), 8.0]


def expressive_config():
    """Four heads over windows, without the composer's pointer, bass head and dense targets
    (tests/test_model.py has those)."""
    return replace(PRESETS["expressive"], sequence_length=12, lstm_units=(16, 16), dense_units=16,
                   embedding_dim=6, precision="float32", bass=False, given_token=False, pointer=False, dense_targets=False,
                   phase=False, metre=False, key=False, transpose=(0, 0))


def expressive_model_dir(tmp_path, steps: list[float], config, first_offset: float = 0.0):
    """A randomised expressive network and a corpus of two 80-token pieces whose onset gaps and
    durations are drawn from `steps`, the first onset `first_offset` quarters in."""
    from networks import expressive_model_dir_with

    rng = np.random.default_rng(6)
    rows = []
    for piece in ("a", "b"):
        offset = first_offset
        for position in range(80):
            rows.append((piece, position, TOKENS[int(rng.integers(len(TOKENS)))], offset,
                         float(rng.choice(steps)), int(rng.integers(20, 120))))
            offset += float(rng.choice(steps))
    names = ("piece_id", "position", "token", "offset", "duration", "velocity")
    return expressive_model_dir_with(tmp_path, config, TOKENS, rows, names)


def test_an_expressive_model_writes_its_own_rhythm_and_dynamics(tmp_path):
    model_dir, expression = expressive_model_dir(tmp_path, [0.25, 0.5, 1 / 3, 1.0, 1.5], expressive_config())

    piece = compose(GenerateConfig(str(model_dir), length=200, seed=1))
    report = piece.report
    events = piece.events  # no primer file: every event is generated
    gaps = {round(b.offset - a.offset, 6) for a, b in zip(events, events[1:])}
    counted = (len(gaps), len({e.duration for e in events}), len({e.velocity for e in events}))
    assert (report.distinct_onset_gaps, report.distinct_durations, report.distinct_velocity_bins) == counted
    assert min(counted) >= 4, counted  # each head is sampled, not one fixed value
    assert 0.0 <= piece.events[0].offset < 1.0  # within the first beat, where the primer's beat puts it
    assert all(b.offset >= a.offset for a, b in zip(piece.events, piece.events[1:]))
    assert {e.velocity for e in piece.events} <= set(expression.velocity)
    # The piece ends at the first bar line (of 4/4) half a bar or more after its last onset: the notes
    # that the network held past it (some, at up to 64 quarters) end there, the others as drawn.
    last = max(e.offset for e in piece.events)
    end = 4.0 * np.ceil((last + 2.0) / 4.0)
    ends = [e.offset + e.duration for e in piece.events]
    assert max(ends) == pytest.approx(end)
    assert {e.duration for e, stop in zip(piece.events, ends) if stop < end - 1e-6} <= set(expression.duration)
    assert any(e.duration not in expression.duration for e, stop in zip(piece.events, ends) if stop > end - 1e-6)

    # After a primer file, the report counts what was generated, not the primer's own notes
    # (played as in the file: a velocity and a length that no class has).
    primer = tmp_path / "primer.mid"
    primer.write_bytes(midi_file(track(*[event for i, pitch in enumerate(PITCHES[:6])
                                         for event in ((0 if i == 0 else 403, on(pitch, velocity=3)),
                                                       (77, off(pitch)))])))
    primed = compose(GenerateConfig(str(model_dir), length=200, seed=1, primer_path=str(primer), keep_primer=True))
    shown, generated = primed.events[:primed.primer_length], primed.events[primed.primer_length:]
    assert primed.primer_length == 6 and {e.velocity for e in shown} == {3}
    gaps = {round(b.offset - a.offset, 6) for a, b in zip(generated, generated[1:])}
    assert (primed.report.distinct_onset_gaps, primed.report.distinct_durations,
            primed.report.distinct_velocity_bins) == (len(gaps), len({e.duration for e in generated}),
                                                      len({e.velocity for e in generated}))


def test_heads_that_see_the_chosen_token_draw_its_gap_duration_and_loudness_after_it_and_gap_rules_choose_it():
    from lstm_composer.decoder import Decoder
    from lstm_composer.expression import Expression
    from lstm_composer.generate import continuation, draw_position
    from lstm_composer.model import CHOSEN_TOKEN, build_model, embedding_name, head_name

    # The onset gap, duration and velocity heads read nothing but the token chosen for their
    # position: token t is played with gap, duration and velocity class 1 + t % 6. Drawn side by
    # side from the state, a token would get another token's classes most of the time.
    config = replace(expressive_config(), dense_targets=True, given_token=True)
    vocab, sizes = 12, Expression().sizes()
    network = randomised(build_model(config, vocab, expression_sizes=sizes, window=None), seed=7)
    chosen = network.get_layer(embedding_name(CHOSEN_TOKEN, config))
    chosen.set_weights([np.eye(vocab, config.embedding_dim, dtype=np.float32)[np.arange(vocab) % 6]])
    for name in ("ioi", "duration", "velocity"):
        head = network.get_layer(head_name(name))
        weights = np.zeros(head.get_weights()[0].shape, np.float32)
        weights[config.dense_units + np.arange(6), 1 + np.arange(6)] = 30.0
        head.set_weights([weights, np.zeros_like(head.get_weights()[1])])
    decoder = Decoder(network, config, vocab)
    primer = np.random.default_rng(0).integers(1, 8, size=(10, len(config.attributes)))
    generated, _, _ = continuation(decoder, decoder.prime(primer), 200, np.random.default_rng(1), Sampling(),
                                primer=primer)
    assert len(set(generated[:, 0].tolist())) > 6  # the token head is drawn freely
    for column in (1, 2, 3):
        assert generated[:, column].tolist() == (1 + generated[:, 0] % 6).tolist()

    # A rule on the onset gap (here: class 3 only) chooses the token too: only tokens played
    # with that gap are drawn, where tilting the gap alone would find no gap to keep.
    only_three = np.eye(sizes[0])[3]

    def gap_rule(gaps):
        return gaps * only_three / (gaps * only_three).sum() if (gaps * only_three).sum() > 0 else gaps

    probabilities, state = decoder.prime(primer)
    rng = np.random.default_rng(2)
    drawn = [draw_position(decoder, probabilities, state, rng, Sampling(), None, None, None, gap_rule)
             for _ in range(50)]
    assert {(token % 6, gap) for token, gap, *_ in drawn} == {(2, 3)}


def test_the_onset_gap_is_drawn_at_its_own_temperature_duration_and_loudness_at_the_tokens():
    from lstm_composer.decoder import Decoder
    from lstm_composer.expression import Expression
    from lstm_composer.generate import draw_position
    from lstm_composer.model import build_model

    config, sizes = expressive_config(), Expression().sizes()
    decoder = Decoder(randomised(build_model(config, len(TOKENS), expression_sizes=sizes), seed=7), config, len(TOKENS))
    state = decoder.initial_state()
    # every head: class 0 at 0.6, class 1 at 0.4; at half the temperature 0.36 : 0.16
    heads = [np.r_[0.6, 0.4, np.zeros(size - 2)] for size in sizes[:3]]
    rng = np.random.default_rng(0)
    for gap_temperature, gap_share in ((1.0, 0.6), (0.5, 0.36 / 0.52)):
        drawn = np.array([draw_position(decoder, [np.full(len(TOKENS), 1 / len(TOKENS))] + heads, state, rng,
                                        Sampling(gap_temperature=gap_temperature), None, None, None)
                          for _ in range(3000)])
        shares = (drawn[:, 1:4] == 0).mean(axis=0)  # the onset gap's, the duration's, the velocity's
        assert shares == pytest.approx([gap_share, 0.6, 0.6], abs=0.03), gap_temperature
    with pytest.raises(ValueError, match="gap_temperature"):
        Sampling(gap_temperature=0)


def test_generated_onsets_keep_to_the_beat_grid_of_the_corpus(tmp_path):
    """Every onset of this corpus falls half a beat after a beat (gaps of one and two beats from
    0.5): a piece after one of its windows is written on the same offbeats, and its onset gaps
    are drawn only where they keep it there, though the untrained network would draw any."""
    model_dir, _ = expressive_model_dir(tmp_path, [1.0, 2.0], replace(expressive_config(), phase=True),
                                        first_offset=0.5)

    def phases(sampling):
        events = compose(GenerateConfig(str(model_dir), length=150, seed=2, sampling=sampling)).events
        return {round(e.offset * 12) % 12 for e in events}, events

    on_grid, events = phases(Sampling())
    assert on_grid == {6}, on_grid
    assert events[0].offset == 0.5
    anywhere, _ = phases(Sampling(grid_share=None))
    assert len(anywhere) > 3, anywhere


def test_beat_clock_leaves_out_the_gaps_that_go_off_the_grid():
    from lstm_composer.expression import Expression
    from lstm_composer.sampling import BeatClock

    expression = Expression()
    assert expression.phases == 24
    sixteenths = np.arange(0, 240, 6) % 24  # onsets on phases 0, 6, 12 and 18 only
    clock = BeatClock.of(expression, start=6, phases=sixteenths, share=0.01)
    assert clock.grid.tolist() == [phase % 6 == 0 for phase in range(24)]
    gaps = np.full(len(expression.ioi), 1.0 / len(expression.ioi))
    kept = clock.on_grid(gaps, phase=6)
    allowed = {value for value, p in zip(expression.ioi, kept) if p > 0}
    assert allowed == {0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0}  # no 32nd, sextuplet or triplet
    assert kept.sum() == pytest.approx(1.0)
    assert clock.after(6, expression.ioi.index(0.75)) == 0
    only_triplets = np.where(np.isclose(expression.ioi, 1 / 3), 1.0, 0.0)
    assert np.array_equal(clock.on_grid(only_triplets, phase=6), only_triplets)  # nothing else to draw
    with pytest.raises(ValueError, match="grid_share"):
        Sampling(grid_share=1.0)


def test_a_reprise_plays_an_earlier_window_again_and_the_recurrence_measure_finds_it(tmp_path):
    """Every two-bar window after the first picks up an earlier one and plays it again (a
    random network never repeats itself, and its sparse rhythm leaves few figures in a window):
    the repeated figures and windows are found by the measures."""
    from lstm_composer.form import figure_recurrence, piece_features
    from lstm_composer.reprise import Form

    model_dir, _ = expressive_model_dir(tmp_path, [0.25, 0.5, 1.0], replace(expressive_config(), phase=True))
    free = compose(GenerateConfig(str(model_dir), length=300, seed=4, form=None))
    planned = compose(GenerateConfig(str(model_dir), length=300, seed=4, form=Form(share=1.0, beats=8)))
    assert figure_recurrence(free.events) == 0.0 and figure_recurrence(planned.events) > 0.05
    similarity = [np.nanmean([e["bar_similarity"] for e in piece_features(p.events)]) for p in (free, planned)]
    assert similarity[1] > similarity[0] + 0.2, similarity
    # A window played again is the earlier one note for note, a whole number of windows later.
    onsets = [round(e.offset * 24) for e in planned.events]
    for i, event in enumerate(planned.events):
        for j, earlier in enumerate(planned.events[:i]):
            if event.pitches == earlier.pitches and (onsets[i] - onsets[j]) % (8 * 24) == 0 and onsets[i] != onsets[j]:
                break
        else:
            continue
        break
    else:
        pytest.fail("no onset repeats an earlier one a whole number of windows later")


def test_density_keeps_a_piece_nearer_the_onsets_per_quarter_asked_for(tmp_path):
    model_dir, _ = expressive_model_dir(tmp_path, [0.25, 0.5, 1.0, 2.0], replace(expressive_config(), phase=True))

    def density(target):
        events = compose(GenerateConfig(str(model_dir), length=300, seed=5, density=target)).events
        return (len(events) - 1) / (events[-1].offset - events[0].offset)

    free, sparse, busy = density(None), density(0.25), density(3.0)
    assert sparse < free < busy, (sparse, free, busy)
    assert abs(sparse - 0.25) < abs(free - 0.25) and abs(busy - 3.0) < abs(free - 3.0)
    with pytest.raises(ValueError, match="density"):
        GenerateConfig(str(model_dir), density=0)
