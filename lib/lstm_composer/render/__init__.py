"""Played tokens → what musicians want, one module per output.

    midi.py        a Standard MIDI File
    score.py       sheet music (MusicXML) on a grand staff
    piano_roll.py  a PNG piano roll
    audio.py       a WAV, through FluidSynth and a General MIDI soundfont
    piece.py       all of them that a user asks for, next to the MIDI file, with the report

Every writer takes a list of `Event`s (`lstm_composer.events`); `fixed_step` gives a bare list
of tokens the paper's timing.
"""
from lstm_composer.events import DEFAULT_VELOCITY, PAPER_STEP, Event, fixed_step
from lstm_composer.render.audio import AudioUnavailable, write_audio
from lstm_composer.render.midi import MAX_TEMPO, MIN_TEMPO, write_midi
from lstm_composer.render.piano_roll import plot_piano_roll
from lstm_composer.render.piece import PieceFiles, Written, write_piece
from lstm_composer.render.score import write_musicxml

__all__ = ["AudioUnavailable", "DEFAULT_VELOCITY", "Event", "MAX_TEMPO", "MIN_TEMPO", "PAPER_STEP", "PieceFiles",
           "Written", "fixed_step", "plot_piano_roll", "write_audio", "write_midi", "write_musicxml", "write_piece"]
