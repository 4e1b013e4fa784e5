"""What clients downloaded, per repository: the memory prefetch follows.

Each repository has a small file under ``<cache>/.prefetch/`` mapping the
request paths clients were answered with a file to the last time one
asked, so a restart keeps it. It is bounded (``MAX_PATHS`` per repository:
the least recently asked are dropped first) and entries older than
``prefetch_unused_after`` are dropped when a pass reads them.

It also remembers what prefetch fetched and no client has asked for yet,
so the first client that does is counted (``on_used``): prefetch that
nobody uses is waste the admin must see.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable

from pkgcache.clock import Clock
from pkgcache.observe.results import Result

log = logging.getLogger("pkgcache.prefetch")

#: Paths remembered per repository; a file of about 100 bytes a path.
MAX_PATHS = 10_000
#: A demand file larger than this is not read (it was not written by us).
MAX_FILE = 4 * 1024 * 1024
FOLDER = ".prefetch"

#: Answers that gave the client the file.
_DELIVERED = frozenset(
    (
        Result.HIT,
        Result.MISS,
        Result.JOINED,
        Result.REVALIDATED,
        Result.REFRESHED,
        Result.STALE,
    )
)


class Demand:
    """Request paths clients were given, per repository, with when."""

    def __init__(self, cache: str, clock: Clock) -> None:
        self.folder = os.path.join(cache, FOLDER)
        self.clock = clock
        self._paths: dict[str, OrderedDict[str, float]] = {}
        self._prefetched: dict[str, OrderedDict[str, float]] = {}
        self._changed: set[str] = set()
        #: Told ``(repository, path)`` when a client first asks for a file
        #: that prefetch fetched.
        self.on_used: list[Callable[[str, str], None]] = []

    def asked(self, repository: str, path: str, result: Result) -> None:
        """A request for ``path`` ended as ``result``: remembered if it gave
        the client the file. O(1): called for every request."""
        if result not in _DELIVERED or repository == "-":
            return
        paths = self._paths.setdefault(repository, OrderedDict())
        paths[path] = self.clock.now()
        paths.move_to_end(path)
        if len(paths) > MAX_PATHS:
            paths.popitem(last=False)
        self._changed.add(repository)
        waiting = self._prefetched.get(repository)
        if waiting is not None and waiting.pop(path, None) is not None:
            for listener in self.on_used:
                listener(repository, path)

    def recent(self, repository: str, unused_after: float) -> dict[str, float]:
        """The paths asked for within ``unused_after`` seconds, with when;
        older ones are forgotten."""
        paths = self._paths.get(repository)
        if not paths:
            return {}
        oldest = self.clock.now() - unused_after
        while paths and next(iter(paths.values())) < oldest:
            paths.popitem(last=False)
            self._changed.add(repository)
        return dict(paths)

    def prefetched(self, repository: str, path: str) -> None:
        """Prefetch fetched ``path``: the first client asking is counted."""
        waiting = self._prefetched.setdefault(repository, OrderedDict())
        waiting[path] = self.clock.now()
        if len(waiting) > MAX_PATHS:
            waiting.popitem(last=False)

    def is_waiting(self, repository: str, path: str, since: float) -> bool:
        """Was ``path`` prefetched after ``since`` and not asked for yet?"""
        waiting = self._prefetched.get(repository)
        when = None if waiting is None else waiting.get(path)
        return when is not None and when >= since

    def load(self, repositories: list[str]) -> None:
        """Read the files of ``repositories`` (at start-up); a broken one is
        replaced, with a log line."""
        for repository in repositories:
            path = self._file(repository)
            try:
                if os.path.getsize(path) > MAX_FILE:
                    raise ValueError("too large")
                with open(path, "rb") as file:
                    data = json.load(file)
                entries = sorted(
                    (float(when), str(name)) for name, when in data["paths"].items()
                )
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
                log.warning(
                    "prefetch: %s is unreadable (%s): starting afresh", path, error
                )
                self._changed.add(repository)
                continue
            self._paths[repository] = OrderedDict(
                (name, when) for when, name in entries[-MAX_PATHS:]
            )

    def snapshot(self) -> dict[str, dict[str, float]]:
        """What changed since the last save, to be written by ``save`` (in a
        thread: the copy is taken on the IOLoop)."""
        changed, self._changed = self._changed, set()
        return {name: dict(self._paths.get(name, {})) for name in changed}

    def save(self, snapshot: dict[str, dict[str, float]]) -> None:
        """Write each repository's file atomically (a temporary file, then
        a rename). Safe in a thread."""
        if not snapshot:
            return
        os.makedirs(self.folder, exist_ok=True)
        for repository, paths in snapshot.items():
            fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=".new-")
            try:
                with os.fdopen(fd, "w") as file:
                    json.dump({"paths": paths}, file, separators=(",", ":"))
                os.replace(temporary, self._file(repository))
            except OSError as error:
                log.warning("prefetch: cannot save %s: %s", repository, error)
                with contextlib.suppress(OSError):
                    os.unlink(temporary)

    def _file(self, repository: str) -> str:
        return os.path.join(self.folder, repository + ".json")
