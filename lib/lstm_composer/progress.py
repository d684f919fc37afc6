"""What the ranks print, on the driver's console as they print it.

Horovod forwards a rank's output to the driver in blocks of up to 64 KiB, so a few lines an
epoch arrive only when the job ends. Instead, the driver listens on a socket
(`ConsoleRelay`) and each rank sends its Python output there line by line
(`send_output_to_driver`), prefixed as Horovod prefixes it (`[0]<stdout>:`). Output written
below Python (TensorFlow's C++ logs) still takes Horovod's way. Rank 0's progress lines are
`callbacks.Progress`'s.
"""
from __future__ import annotations

import io
import re
import secrets
import socket
import sys
import threading
from typing import NamedTuple, TextIO


class RelayAddress(NamedTuple):
    """Where a rank sends its lines, and the key that proves it is one of this job's ranks."""

    host: str
    port: int
    key: str


FAILED = re.compile(r"^\[\d+\]<stderr>:rank (\S+) failed \((\w+)\): (.*)$")


class Failure(NamedTuple):
    """A rank's last words (`failure_line`), as the relay heard them."""

    rank: str
    kind: str  # what can help: rank.failure_kind
    message: str


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def failure_line(rank, kind: str, error: BaseException) -> str:
    """The line a failing rank prints last: its exception's type and message, on one line."""
    return f"rank {rank} failed ({kind}): {type(error).__name__}: {' '.join(str(error).split()) or '(no message)'}"


class ConsoleRelay:
    """On the driver: accepts the ranks' connections on `host` and writes every line they send
    to `out` (the console) at once, whole lines only, until `close`. The ranks' failure lines
    are kept in `failures`, in the order they came."""

    def __init__(self, host: str, out: TextIO | None = None):
        self.failures: list[Failure] = []
        self._out = out or sys.stdout
        self._server = socket.create_server((host, 0))
        self._server.settimeout(0.5)
        self.address = RelayAddress(host, self._server.getsockname()[1], secrets.token_hex(16))
        self._lock, self._stop, self._readers = threading.Lock(), threading.Event(), []
        self._acceptor = threading.Thread(target=self._accept, name="console-relay", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except (socket.timeout, OSError):
                continue
            connection.settimeout(None)
            reader = threading.Thread(target=self._relay, args=(connection,), daemon=True)
            reader.start()
            self._readers.append(reader)

    def _relay(self, connection: socket.socket) -> None:
        with connection, connection.makefile("r", encoding="utf-8", errors="replace", newline="\n") as lines:
            if lines.readline().rstrip("\n") != self.address.key:
                return
            for line in lines:
                failed = FAILED.match(line.rstrip("\n"))
                with self._lock:
                    if failed:
                        self.failures.append(Failure(*failed.groups()))
                    self._out.write(line if line.endswith("\n") else line + "\n")
                    self._out.flush()

    def close(self) -> None:
        """Stop accepting; wait a little for the lines of ranks that have ended. Once is enough."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._acceptor.join()
        for reader in self._readers:
            reader.join(timeout=5)
        self._server.close()

    def __enter__(self) -> "ConsoleRelay":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _LineSender(io.TextIOBase):
    """A text stream that sends each complete line to the driver's relay, prefixed; where the
    relay cannot be reached, it writes to the stream it replaced."""

    def __init__(self, connection: socket.socket | None, prefix: str, fallback: TextIO):
        super().__init__()
        self._connection, self._prefix, self._fallback = connection, prefix, fallback
        self._partial = ""
        self._lock = threading.Lock()

    @property
    def encoding(self) -> str:
        return "utf-8"

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:  # for code that asks (faulthandler): the stream it replaced
        return self._fallback.fileno()

    def write(self, text: str) -> int:
        with self._lock:
            *lines, self._partial = (self._partial + text).split("\n")
            if lines:
                self._send("".join(f"{self._prefix}{line}\n" for line in lines))
        return len(text)

    def _send(self, text: str) -> None:
        if self._connection is not None:
            try:
                self._connection.sendall(text.encode("utf-8"))
                return
            except OSError:
                self._connection = None
        self._fallback.write(text)
        self._fallback.flush()


def send_output_to_driver(address: RelayAddress | None, rank: int) -> None:
    """On a rank: from now on its Python stdout and stderr go line by line to the driver's
    relay at `address`; without one (or if it cannot be reached), they stay as they are but
    are flushed at every line."""
    if address is None:
        for stream in (sys.stdout, sys.stderr):
            if hasattr(stream, "reconfigure"):
                stream.reconfigure(line_buffering=True)
        return
    try:
        connection = socket.create_connection((address.host, address.port), timeout=30)
        connection.settimeout(None)
        connection.sendall(f"{address.key}\n".encode())
    except OSError as error:
        print(f"rank {rank}: cannot reach the driver's console at {address.host}:{address.port} ({error}); "
              f"its output goes Horovod's way, in blocks", file=sys.stderr, flush=True)
        connection = None
    sys.stdout = _LineSender(connection, f"[{rank}]<stdout>:", sys.stdout)
    sys.stderr = _LineSender(connection, f"[{rank}]<stderr>:", sys.stderr)


def duration_text(seconds: float) -> str:
    """`3725` → `1:02:05`, `65` → `1:05`."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
