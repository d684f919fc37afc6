"""One writer at a time per corpus and per model directory, on any storage `storage` knows.

A job that writes a corpus (parse) or a model directory (train) first takes the target's lock:
it writes a lock file of its own beside the target's files, `_lock-<start time>-<random>.json`,
and lists the target.
It holds the lock when its file is the only live one there. Two jobs that write at the same
moment both see two files; the later name withdraws at once, the earlier waits a moment and
tries again, so one of them goes on. This needs only writes that are seen by the next listing
(a local disk, HDFS and S3 all give that), not an atomic create, which S3 through pyarrow lacks.

The holder rewrites its file every `HEARTBEAT_SECONDS`. A lock is left by a killed job when
its process is gone (same host) or its file has not been rewritten for `STALE_SECONDS`
(another host); the next job deletes it and goes on. A holder whose file was taken away that
way learns it at its next heartbeat, and `check` raises before it commits anything.
"""
from __future__ import annotations

import json
import os
import random
import secrets
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass

from lstm_composer import storage

PREFIX = "_lock-"  # readers of the tables skip names starting with _
HEARTBEAT_SECONDS = 15.0
STALE_SECONDS = 120.0
TIE_RETRIES = 5  # how often the earlier of two jobs that wrote together tries again


class Busy(RuntimeError):
    """Another job holds the lock; the message names it."""


@dataclass(frozen=True)
class Holder:
    job: str  # "parse", "train"
    host: str
    pid: int
    started: float  # time.time()
    command: str
    process_start: str = ""  # the process's start in clock ticks after boot (Linux): tells a reused pid apart

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started))
        return f"a {self.job} job (process {self.pid} on {self.host}, since {since}: {self.command})"

    def alive(self, beat_age: float) -> bool:
        """Whether the job that wrote this file may still run."""
        if beat_age > STALE_SECONDS:
            return False
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # someone else's process
            pass
        state = process_state(self.pid)
        if state is None:  # no /proc: the process is there
            return True
        status, start = state
        return status != "Z" and (not self.process_start or start == self.process_start)


def process_state(pid: int) -> tuple[str, str] | None:
    """(state letter, start time in clock ticks after boot) from Linux's /proc; a killed process
    whose parent has not reaped it is still there, as a zombie ("Z")."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], fields[19]


def _read_holder(uri: str, tries: int = 5) -> tuple[Holder, float] | None:
    """(holder, time of its last heartbeat) from a lock file; None when it is gone (withdrawn or
    taken over while the target was listed) or not one of ours (a stranger's file is no lock).
    S3 may fail a read of an object deleted meanwhile with another error than "not found": such
    a read is tried again while the object is there."""
    for attempt in range(tries):
        try:
            saved = json.loads(storage.read_text(uri))
            beat = saved.pop("beat")
            return Holder(**saved), beat
        except (FileNotFoundError, ValueError, TypeError, KeyError):  # gone, or a stranger's file
            return None
        except OSError:
            if not storage.exists(uri):
                return None
            if attempt == tries - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
    return None


class Lock:
    """`with Lock(target, "parse"):` holds `target`'s lock for the block; `Busy` when another
    live job holds it after `wait` seconds."""

    def __init__(self, target: str, job: str, wait: float = 0.0):
        self.target = target
        self.wait = wait
        own = process_state(os.getpid())
        self.holder = Holder(job, socket.gethostname(), os.getpid(), time.time(), " ".join(sys.argv)[:300],
                             own[1] if own else "")
        self.name = f"{PREFIX}{int(self.holder.started * 1000):013d}-{secrets.token_hex(4)}.json"
        self._stop = threading.Event()
        self._lost = False
        self._beat: threading.Thread | None = None

    @property
    def path(self) -> str:
        return storage.join(self.target, self.name)

    def _write(self) -> None:
        storage.write_text(self.path, json.dumps({**asdict(self.holder), "beat": time.time()}))

    def others(self) -> dict[str, Holder]:
        """The other live holders' files, by name; stale ones are deleted on the way."""
        live = {}
        for name in storage.list_names(self.target):
            if name == self.name or not (name.startswith(PREFIX) and name.endswith(".json")):
                continue
            uri = storage.join(self.target, name)
            read = _read_holder(uri)
            if read is None:
                continue
            holder, beat = read
            if holder.alive(time.time() - beat):
                live[name] = holder
            else:
                storage.delete(uri)
        return live

    def acquire(self) -> "Lock":
        deadline, ties = time.monotonic() + self.wait, 0
        while True:
            self._write()
            try:
                others = self.others()
            except BaseException:  # a storage error: leave no lock behind that others would wait for
                storage.delete(self.path)
                raise
            if not others:
                break
            storage.delete(self.path)
            first = min(others)
            if self.name < first and ties < TIE_RETRIES:
                ties += 1  # the other wrote after us and withdraws: try again
            elif time.monotonic() >= deadline:
                raise Busy(f"{self.target} is being written by {others[first].describe()}: "
                           f"wait for it to finish (a lock left by a killed job is taken over after "
                           f"{STALE_SECONDS:g} s, or at once on the same host)")
            time.sleep(random.uniform(0.2, 1.0))
        self._beat = threading.Thread(target=self._heartbeat, name="lock heartbeat", daemon=True)
        self._beat.start()
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            if not storage.exists(self.path):
                self._lost = True
                return
            self._write()

    def check(self) -> None:
        """Raise `Busy` when the lock was taken over (this job was judged dead): commit nothing."""
        if self._lost or not storage.exists(self.path):
            raise Busy(f"the lock on {self.target} was taken over by another job "
                       f"(this one's heartbeat stopped for over {STALE_SECONDS:g} s): nothing was committed")

    def release(self) -> None:
        self._stop.set()
        if self._beat:
            self._beat.join()
        storage.delete(self.path)

    def __enter__(self) -> "Lock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
