"""The history kept across restarts: ``CACHE/.pkgcache-history.json.gz``.

A hidden name, so it is never served (``paths.py``) and never counted or
evicted as a cached file (``cull.scan``). Written every ``SAVE_EVERY``
seconds and when the daemon stops, atomically (a temporary file, then one
rename), so a crash leaves the last complete copy. JSON, compressed: the
history of 100 repositories with every bucket full stays well under
``LIMIT``. A file that is larger than ``LIMIT``, unreadable or not a
history is logged in one line and replaced at the next save; it never
stops the daemon.

The periodic save takes the list of series on the IOLoop and copies,
encodes and writes them in a worker thread.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import tempfile
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from tornado.ioloop import IOLoop, PeriodicCallback

from pkgcache.clock import Clock
from pkgcache.observe.history import History, dump_parts

log = logging.getLogger("pkgcache.status")

FILE_NAME = ".pkgcache-history.json.gz"
#: The largest history file read (and written).
LIMIT = 1024 * 1024
#: The most bytes it may decompress to (a small file must not become a
#: large allocation).
TEXT_LIMIT = 32 * 1024 * 1024
SAVE_EVERY = 300.0


class HistoryFile:
    """Loads ``history`` from ``root``'s history file and saves it there;
    ``names()`` tells the repositories still configured (only they are
    kept)."""

    def __init__(
        self,
        root: str,
        history: History,
        clock: Clock,
        names: Callable[[], Iterable[str]],
    ) -> None:
        self.path = os.path.join(root, FILE_NAME)
        self.history = history
        self.clock = clock
        self.names = names
        self._timer: PeriodicCallback | None = None
        self._saving = False

    def load(self) -> None:
        """Read the file into the history; a missing one is a new history,
        a bad one is logged and left to be replaced."""
        try:
            data = self._read()
            if data is not None:
                self.history.restore(data, self.clock.now(), self.names())
        except (OSError, ValueError, EOFError, zlib.error) as error:
            log.warning(
                "history file %s is not usable (%s): starting a new history",
                self.path,
                error,
            )

    def _read(self) -> Any:
        try:
            with open(self.path, "rb") as file:
                compressed = file.read(LIMIT + 1)
        except FileNotFoundError:
            return None
        if len(compressed) > LIMIT:
            raise ValueError(f"larger than {LIMIT} bytes")
        inflater = zlib.decompressobj(wbits=31)
        text = inflater.decompress(compressed, TEXT_LIMIT)
        if inflater.unconsumed_tail or not inflater.eof:
            raise ValueError("truncated, or too large once decompressed")
        return json.loads(text)

    def start(self) -> None:
        """Save every ``SAVE_EVERY`` seconds from now on."""
        self._timer = PeriodicCallback(self._save_later, SAVE_EVERY * 1000)
        self._timer.start()

    def stop(self) -> None:
        """Stop the timer and save now (the daemon is stopping)."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.save()

    def save(self) -> None:
        """Write the history now, on this thread."""
        self._write(self._data())

    def _data(self) -> dict[str, Any]:
        return self.history.dump(self.clock.now(), self.names())

    async def _save_later(self) -> None:
        if self._saving:
            return
        self._saving = True
        try:
            parts = self.history.parts(self.names())
            now = self.clock.now()
            await IOLoop.current().run_in_executor(
                None, lambda: self._write(dump_parts(now, parts))
            )
        finally:
            self._saving = False

    def _write(self, data: dict[str, Any]) -> None:
        """Encode and write atomically; failures are logged, never raised."""
        encoded = gzip.compress(
            json.dumps(data, separators=(",", ":")).encode(), 6, mtime=0
        )
        if len(encoded) > LIMIT:
            log.warning("history too large to keep (%d bytes): not saved", len(encoded))
            return
        # A name of its own per write: a periodic save may still be writing
        # when the save at stop begins.
        folder, name = os.path.split(self.path)
        temporary = ""
        try:
            fd, temporary = tempfile.mkstemp(dir=folder, prefix=name, suffix=".tmp")
            with os.fdopen(fd, "wb") as file:
                file.write(encoded)
            os.replace(temporary, self.path)
        except OSError as error:
            log.warning("cannot save the history to %s: %s", self.path, error)
            if temporary:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
