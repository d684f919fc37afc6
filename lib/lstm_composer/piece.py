"""One MIDI file's bytes → one piece: its row of the `pieces` table and its tokens.

No Spark and no TensorFlow: the parse job runs this on its executors (or on the driver for a
small re-run), and generation runs it on a primer file. A file that cannot be parsed gives a
row with status `error` and the reason, never an exception.
"""
from __future__ import annotations

import gc
import hashlib
import signal
import threading
from contextlib import contextmanager, nullcontext
from datetime import datetime
from typing import NamedTuple

from lstm_composer.midi import MidiError, read_midi
from lstm_composer.tokens import Token, onset_tolerance, tokenize

STATUSES = ("ok", "empty", "duplicate", "error")


class PieceRow(NamedTuple):
    """One row of the `pieces` table, in the table's column order (`tables.PIECES_SCHEMA`)."""

    piece_id: str  # the content's name (`piece_id`), or a name from the path where the content is unknown
    path: str
    status: str  # one of STATUSES
    error: str | None  # the reason, for any status but ok
    n_tokens: int = 0
    ticks_per_quarter: int | None = None
    tempos: list[tuple[float, float]] | None = None  # (offset in quarter notes, beats per minute)
    time_signatures: list[tuple[float, str]] | None = None  # (offset in quarter notes, "3/4")
    onset_tolerance_ms: float | None = None  # how the tokens were grouped: 0 (exact ticks) or a tolerance
    size: int | None = None  # the file at `path`: bytes, and when it was last modified
    modified: datetime | None = None

    @classmethod
    def failed(cls, piece_id: str, path: str, reason: str) -> "PieceRow":
        return cls(piece_id, path, "error", reason)

    @classmethod
    def duplicate(cls, piece_id: str, path: str, first: str) -> "PieceRow":
        """The same content as the file at `first`, which holds its tokens."""
        return cls(piece_id, path, "duplicate", f"same content as {first}")


class FileTimeout(Exception):
    pass


@contextmanager
def time_limit(seconds: float):
    """Raise `FileTimeout` in this thread after `seconds` (main thread only; elsewhere no limit)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise FileTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)  # inside the try: a short limit may expire at once
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def cyclic_gc_paused():
    """Parsing allocates a million small objects and no reference cycles: Python's cycle
    collector would spend a third of the time looking for some. Reference counting still
    frees everything."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def piece_id(content: bytes) -> str:
    """A piece is named by its content, so the same file under two names is one piece.
    (The parse job computes the same value in the JVM: `corpus.content_id`.)"""
    return hashlib.sha256(content).hexdigest()[:16]


def parse_piece(path: str, content: bytes, timeout: float | None = None,
                onset_tolerance_ms: float | None = None) -> tuple[PieceRow, list[Token]]:
    """One file's bytes → its `pieces` row and its tokens, with onsets grouped as
    `tokens.onset_tolerance` says for `onset_tolerance_ms` (None: auto). Never raises."""
    pid = piece_id(content)
    try:
        with time_limit(timeout) if timeout else nullcontext(), cyclic_gc_paused():
            song = read_midi(content)
            tolerance = onset_tolerance(song, onset_tolerance_ms)
            tokens = tokenize(song, tolerance)
    except MidiError as error:
        return PieceRow.failed(pid, path, str(error)), []
    except FileTimeout:
        return PieceRow.failed(pid, path, f"timeout: parsing took over {timeout:g} s (--file-timeout)"), []
    except Exception as error:  # a bug of ours must not cost the user the other files
        return PieceRow.failed(pid, path, f"internal error: {type(error).__name__}: {error}"), []
    tpq = float(song.ticks_per_quarter)
    if tokens:
        status, reason = "ok", None
    else:
        status, reason = "empty", "percussion only (channel 10)" if song.percussion_notes else "no notes"
    row = PieceRow(pid, path, status, reason, len(tokens), song.ticks_per_quarter,
                   [(tick / tpq, bpm) for tick, bpm in song.tempos],
                   [(tick / tpq, signature) for tick, signature in song.time_signatures], tolerance)
    return row, tokens
