"""One writer of a cache folder at a time: an exclusive ``flock`` on
``ROOT/.lock``, held for the daemon's life.

A second daemon on the same folder would sweep the first one's partial
files at start-up; ``package-cache cull`` or ``verify --remove`` would
remove files under a daemon whose count of the cache then lies. So the
daemon takes the lock before it touches anything in the folder and writes
its pid in the file, and the tools that change the folder take it for
their run; whoever finds it held stops, naming the holder's pid.

``flock`` locks belong to the open file and end with the process, however
it ends, so a lock is never left stale by a crash; the file stays (removing
it would let two processes lock two different files of the same name).
Names starting with ``.`` are never served, scanned or culled
(``paths.py``, ``cull.scan``).

The daemon creates the file. The tools never do: a lock file made by
``cull`` run as root would be one the daemon's own user cannot open. With
no lock file, no daemon has ever run on the folder, and the tools run
without one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

LOCK_FILE = ".lock"
#: A pid is a few digits; anything longer is not ours to show.
_MAX_PID_TEXT = 32


class CacheLocked(Exception):
    """Another process holds the lock; the message names its pid, in one
    line."""

    def __init__(self, root: str, holder: int | None) -> None:
        who = f"pid {holder}" if holder is not None else "another process"
        super().__init__(
            f"cache folder {root} is in use by {who}, which holds its {LOCK_FILE}"
        )
        self.holder = holder


class CacheLock:
    """The lock of one cache folder, held while this object is open.

    ``CacheLock.take(root)`` (the daemon: creates the file, writes its pid)
    or ``CacheLock.take(root, create=False)`` (the tools); both raise
    ``CacheLocked`` when another process holds it and ``OSError`` when the
    file cannot be opened.
    """

    def __init__(self, path: str, descriptor: int | None) -> None:
        self.path = path
        self._descriptor = descriptor

    @property
    def held(self) -> bool:
        """False when there was no lock file to take (``create=False``)."""
        return self._descriptor is not None

    @classmethod
    def take(cls, root: str, create: bool = True) -> CacheLock:
        path = os.path.join(root, LOCK_FILE)
        descriptor = _open(path, create)
        if descriptor is None:
            return cls(path, None)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(descriptor)
            os.close(descriptor)
            raise CacheLocked(root, holder) from None
        except BaseException:
            os.close(descriptor)
            raise
        with contextlib.suppress(OSError):
            # Read-only (a tool not allowed to write it): the daemon's pid
            # stays, and a daemon that finds the lock held names that one.
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        return cls(path, descriptor)

    def release(self) -> None:
        """Let another process take it (the process's end does the same)."""
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


def _open(path: str, create: bool) -> int | None:
    """The lock file opened for writing if we may, for reading otherwise
    (``flock`` needs neither); None when ``create`` is off and there is
    none. Never through a symlink: the folder may be shared (DISTDIR)."""
    flags = os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        return os.open(path, flags | os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
    except FileNotFoundError:
        if create:
            raise
        return None
    except PermissionError as refused:
        try:
            return os.open(path, flags | os.O_RDONLY)
        except FileNotFoundError:
            raise refused from None


def _holder(descriptor: int) -> int | None:
    """The pid the holder wrote, or None (not written yet, or not a pid)."""
    try:
        text = os.pread(descriptor, _MAX_PID_TEXT, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None
