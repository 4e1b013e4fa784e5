"""What the cache knows about a volatile file besides its bytes: the
upstream's validators, the source it came from and when it was last
confirmed (``Validators``).

Kept in ``ROOT/.meta/`` (a hidden folder: never servable, skipped by cull)
as one small JSON file per cached file, written with a rename so it is
never half there, and kept across restarts. Each record names the inode,
size and mtime of the file it describes, so a record is believed only for
that very file: a new version published at the path, or a crash between
the publish and the record, leaves no record that could be mistaken for
the new file's (that file is then revalidated without validators).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace

from pkgcache.store.paths import CacheKey

log = logging.getLogger("pkgcache.store")

META_FOLDER = ".meta"
#: Records kept in memory, so a fresh volatile hit reads no file.
REMEMBERED = 10000


@dataclass(frozen=True)
class Validators:
    etag: str | None
    last_modified: str | None
    source: str | None
    #: POSIX time the upstream last gave or confirmed this version.
    confirmed: float
    #: The upstream's Content-Type: a registry document is answered with
    #: it (a file's own type follows from its name).
    content_type: str | None = None
    #: The digest the file was checked against when it arrived
    #: (``algorithm:hex``); None: published on its length alone.
    verified: str | None = None
    #: A registry manifest's ``Docker-Content-Digest``: what a HEAD
    #: revalidation compares, and what its answers carry.
    content_digest: str | None = None

    def conditional_headers(self) -> dict[str, str]:
        """The request headers that ask upstream "changed since?"."""
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


def _identity(result: os.stat_result) -> list[int]:
    return [result.st_ino, result.st_size, result.st_mtime_ns]


class MetaStore:
    """Validators by cache key, believed only for the file they describe."""

    def __init__(self, root: str) -> None:
        self.folder = os.path.join(root, META_FOLDER)
        self._memory: OrderedDict[str, tuple[list[int], Validators]] = OrderedDict()

    def read(self, key: CacheKey, result: os.stat_result) -> Validators | None:
        """The validators of the file at ``key`` whose stat is ``result``."""
        identity = _identity(result)
        entry = self._memory.get(key.relative)
        if entry is None:
            entry = self._load(key)
            if entry is None:
                return None
            self._remember(key, entry)
        return entry[1] if entry[0] == identity else None

    def write(
        self, key: CacheKey, result: os.stat_result, validators: Validators
    ) -> None:
        """Record ``validators`` for the file whose stat is ``result``."""
        entry = (_identity(result), validators)
        record = {"file": entry[0], **asdict(validators)}
        path = self._path(key)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".new-")
            with os.fdopen(fd, "w") as file:
                json.dump(record, file)
            os.replace(temporary, path)
        except OSError as error:
            log.warning("cannot record the validators of %s: %s", key, error)
            return
        self._remember(key, entry)

    def confirmed(self, key: CacheKey, result: os.stat_result, now: float) -> None:
        """The upstream said the file did not change (304) at ``now``:
        fresh again."""
        validators = self.read(key, result)
        if validators is not None:
            self.write(key, result, replace(validators, confirmed=now))

    def recorded(self, key: CacheKey) -> tuple[list[int], Validators] | None:
        """The record at ``key`` and the identity (inode, size, mtime) of
        the file it was written for, whatever file is there now (the
        off-line check judges that itself)."""
        return self._load(key)

    def forget(self, key: CacheKey) -> None:
        self._memory.pop(key.relative, None)
        with contextlib.suppress(OSError):
            os.unlink(self._path(key))

    def _path(self, key: CacheKey) -> str:
        return os.path.join(self.folder, key.relative + ".json")

    def _load(self, key: CacheKey) -> tuple[list[int], Validators] | None:
        try:
            with open(self._path(key)) as file:
                record = json.load(file)
            identity = [int(value) for value in record.pop("file")]
            return identity, Validators(**record)
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def _remember(self, key: CacheKey, entry: tuple[list[int], Validators]) -> None:
        self._memory[key.relative] = entry
        self._memory.move_to_end(key.relative)
        while len(self._memory) > REMEMBERED:
            self._memory.popitem(last=False)
