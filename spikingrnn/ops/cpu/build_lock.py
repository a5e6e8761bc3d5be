"""The lock that makes one process at a time build the cpu backend's C++ loops, and what a killed build leaves.

torch's own build lock is a ``lock`` file that ``torch.utils.cpp_extension.load`` creates with
``O_EXCL`` and deletes when it is done: a process killed while building leaves it behind, and every
later process then waits for it forever, silently. This lock is an advisory ``flock`` (``msvcrt``
byte lock on Windows) on a file of its own: the kernel drops it when the holder dies, however it
dies, so a dead holder's lock is simply taken over, and nobody ever waits on it for longer than the
caller allows. The file's one JSON line says who holds or last held it (pid, host, start time) and
how far it got (``phase``): ``"building"`` (compiling), ``"loading"`` (a built module existed:
torch only checks it is up to date and imports it), ``"done"`` or ``"failed"``; the messages quote it.

A builder killed alone (``kill -9`` of the Python process, the OOM killer) leaves its ninja and
compiler running: :func:`processes_in` finds them (Linux), so that no second build writes the same
object files at the same time.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]  # tells _try_lock to use msvcrt
    import msvcrt

ACTIVE_PHASES = ("building", "loading")


def _try_lock(fd: int) -> bool:
    """Take the lock on ``fd`` without blocking; whether it was free."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return True
    except OSError:  # held by another process (EWOULDBLOCK / EACCES)
        return False


def describe(record: dict) -> str:
    """``pid 123 on host, since 12:00:01 (45 s ago)`` for a lock record."""
    started = record.get("started")
    if not isinstance(started, (int, float)):
        return f"pid {record.get('pid', '?')} on {record.get('host', '?')}"
    clock = time.strftime("%H:%M:%S", time.localtime(started))
    return (f"pid {record.get('pid', '?')} on {record.get('host', '?')}, since {clock} "
            f"({max(0.0, time.time() - started):.0f} s ago)")


class BuildLock:
    """``BuildLock(path)``: ``acquire(phase, wait_s)`` it, ``write`` progress, ``release(phase)`` it.

    ``previous`` is the record found when it was acquired: the last holder's, which says whether
    that holder finished (``"done"``/``"failed"``) or died on the way (an active phase).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.previous: dict = {}
        self._fd: int | None = None

    def read(self) -> dict:
        """The record in the file (``{}`` when missing or unreadable)."""
        try:
            # the first line: a record being rewritten in place may still trail the end of a longer one
            record = json.loads((self.path.read_text().splitlines() or ["{}"])[0])
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    def acquire(self, phase: str, wait_s: float = 0.0, directory: str = "") -> dict | None:
        """Take the lock, polling for up to ``wait_s`` seconds while the holder is only ``"loading"``
        (a few seconds at most) and not at all while it is ``"building"`` (tens of seconds). A record
        of a finished phase under a held lock is the previous holder's: the new holder has taken the
        lock but not yet written its own (processes started together), so it is polled as well.
        Returns ``None`` once held (this process's record written, ``phase`` and ``directory`` in
        it), else the holder's record."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + wait_s
        while not _try_lock(fd):
            holder = self.read()
            if holder.get("phase") == "building" or time.monotonic() >= deadline:
                os.close(fd)
                return holder
            time.sleep(0.05)
        self._fd = fd
        self.previous = self.read()
        self.write(phase, directory=directory)
        return None

    def write(self, phase: str, **details) -> None:
        """Replace the record with this process's, at ``phase`` (with ``details``)."""
        self._put(dict(pid=os.getpid(), host=socket.gethostname(), started=time.time(), phase=phase, **details))

    def release(self, phase: str, **details) -> None:
        """Record the outcome and let the next process in (closing the file drops the lock)."""
        if self._fd is None:
            return
        try:
            self.write(phase, **details)
        finally:
            self._close()

    def abandon(self) -> None:
        """Let go, putting the previous holder's record back: this process did nothing worth telling."""
        if self._fd is None:
            return
        try:
            self._put(self.previous)
        finally:
            self._close()

    def _put(self, record: dict) -> None:
        if self._fd is None:
            raise RuntimeError(f"BuildLock: {self.path} is not held by this process")
        data = (json.dumps(record) + "\n").encode() if record else b""
        # in place (the lock is on this file): rewrite from the start, then cut what is left of a longer record
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, data)
        os.ftruncate(self._fd, len(data))

    def _close(self) -> None:
        assert self._fd is not None  # callers return early when nothing is held
        os.close(self._fd)
        self._fd = None


def processes_in(directories) -> list[tuple[int, str]]:
    """``(pid, command line)`` of the other processes whose working directory is one of
    ``directories`` (ninja and the compilers it runs work in the build directory). Linux only:
    elsewhere, and for processes of other users, nothing is found."""
    targets = {os.path.realpath(d) for d in directories}
    found: list[tuple[int, str]] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if os.path.realpath(os.readlink(entry / "cwd")) not in targets:
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone, or another user's
            continue
        found.append((int(entry.name), command[:120]))
    return found


def remove_torch_lock(directory: Path) -> bool:
    """Delete torch's ``lock`` file in a build ``directory``; whether there was one. Called with the
    :class:`BuildLock` held and no process working in ``directory``: no live build owns it then."""
    try:
        (Path(directory) / "lock").unlink()
    except FileNotFoundError:
        return False
    return True
