"""The Go front: the GOPROXY protocol under a repository's prefix, and the
checksum database it may proxy.

- ``<module>/@v/list`` and ``<module>/@latest``: volatile.
- ``<module>/@v/<version>.info``: immutable for a canonical version
  (pseudo-versions are), volatile for a query (``master``, ``v1``).
- ``<module>/@v/<version>.mod`` and ``.zip``: immutable, canonical
  versions only. With a ``sumdb``, each is checked before it is stored
  against the ``h1:`` the database's lookup record states
  (``gosumdb.py``): a zip by the files inside it (``digests/dirhash``),
  off the IOLoop, once it is whole (``finishing.Inspect``).
- ``sumdb/<host of the sumdb URL>/``: ``supported`` answers 200 itself;
  ``latest`` and ``lookup/<module>@<version>`` are volatile, full
  ``tile/`` files immutable and partial ones (``.p/``) volatile.
Module paths and versions are case-encoded (``gopaths.py``); a path that
is none of these, or names an invalid module path, is refused 404
before any source is asked. 404 and 410 from a source are both "not
found" (``fetching/attempt.py``) and remembered for ``negative_for``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from typing import BinaryIO

from tornado.ioloop import IOLoop

from pkgcache.digests.dirhash import NotAModuleZip, mod_h1, zip_h1
from pkgcache.digests.values import Digest
from pkgcache.fetching.finishing import Inspect, Judgement, Step
from pkgcache.fetching.inflight import Downloads
from pkgcache.fetching.upstream import Route
from pkgcache.registries import gopaths
from pkgcache.registries.gosumdb import LookupRecords, sumdb_host
from pkgcache.registries.targets import Refusal, Reply, Resolution, Target
from pkgcache.repositories.rules import Policy, Repository
from pkgcache.store.cache import CacheStore
from pkgcache.store.paths import CacheKey, RequestPath

#: Go refuses a larger ``go.mod`` (``modfetch``'s limit).
MAX_GO_MOD = 16 * 1024 * 1024
#: ``tile/<H>/<L or data>/[x<NNN>/...]<NNN>[.p/<W>]`` (``tlog.ParseTilePath``).
_TILE = re.compile(
    r"tile/([1-9][0-9]?)/([0-9]{1,2}|data)/((?:x[0-9]{3}/)*[0-9]{3})(\.p/[1-9][0-9]*)?"
)
_SUFFIXES = ("info", "mod", "zip")


class GoFront:
    """Resolves GOPROXY requests; checks modules against their lookup records."""

    def __init__(self, store: CacheStore, downloads: Downloads | None) -> None:
        """``downloads``: where lookup records are fetched through the
        cache; None: they are never asked (no checks)."""
        self.records = (
            LookupRecords(store, downloads) if downloads is not None else None
        )

    def resolve(self, repository: Repository, path: RequestPath) -> Resolution:
        below = path.segments[len(repository.prefix) :]
        if path.folder or not below:
            return Refusal(404, "directories are not served")
        if below[0] == "sumdb":
            return self._sumdb(repository, path.key, below[1:])
        if below[-1] == "@latest":
            return self._module_file(repository, path.key, below[:-1], Policy.VOLATILE)
        if len(below) < 3 or below[-2] != "@v":
            return Refusal(404, "not a GOPROXY path")
        name = below[-1]
        if name == "list":
            return self._module_file(repository, path.key, below[:-2], Policy.VOLATILE)
        escaped, _, suffix = name.rpartition(".")
        version = gopaths.version(escaped) if suffix in _SUFFIXES else None
        if version is None:
            return Refusal(404, "not a GOPROXY path")
        canonical = gopaths.is_canonical(version)
        if suffix == "info":
            policy = Policy.IMMUTABLE if canonical else Policy.VOLATILE
            return self._module_file(repository, path.key, below[:-2], policy)
        if not canonical:
            return Refusal(404, f"{version} is not a canonical version")
        module = gopaths.module_path("/".join(below[:-2]))
        if module is None:
            return Refusal(404, "not a valid module path")
        checks: tuple[Step, ...] = ()
        if repository.settings.sumdb:
            checks = self._check(repository, module, version, suffix == "zip")
        return Target(
            path.key, Policy.IMMUTABLE, _route(repository, below), checks=checks
        )

    def _module_file(
        self,
        repository: Repository,
        key: CacheKey,
        module: tuple[str, ...],
        policy: Policy,
    ) -> Resolution:
        if gopaths.module_path("/".join(module)) is None:
            return Refusal(404, "not a valid module path")
        below = key.segments[len(repository.prefix) :]
        return Target(key, policy, _route(repository, below))

    def _sumdb(
        self, repository: Repository, key: CacheKey, below: tuple[str, ...]
    ) -> Resolution:
        sumdb = repository.settings.sumdb
        if sumdb is None or len(below) < 2 or below[0] != sumdb_host(sumdb):
            return Refusal(404, "no such checksum database here")
        rest = below[1:]
        route = Route((sumdb,), CacheKey(rest).url_path)
        if rest == ("supported",):
            return Reply(200)
        if rest == ("latest",):
            return Target(key, Policy.VOLATILE, route)
        if rest[0] == "lookup" and len(rest) >= 2:
            module, at, version = "/".join(rest[1:]).rpartition("@")
            found = gopaths.version(version) if at else None
            if gopaths.module_path(module) is None or found is None:
                return Refusal(404, "not a lookup of a module version")
            if not gopaths.is_canonical(found):
                return Refusal(404, f"{found} is not a canonical version")
            return Target(key, Policy.VOLATILE, route)
        tile = _TILE.fullmatch("/".join(rest))
        if tile is not None and int(tile[1]) <= 30:
            partial = tile[4] is not None and int(tile[4][3:]) < 2 ** int(tile[1])
            if tile[4] is not None and not partial:
                return Refusal(404, "not a tile")
            return Target(key, Policy.VOLATILE if partial else Policy.IMMUTABLE, route)
        return Refusal(404, "not a checksum database path")

    def _check(
        self, repository: Repository, module: str, version: str, is_zip: bool
    ) -> tuple[Step, ...]:
        """The ``Inspect`` step that checks a zip or ``go.mod`` against the
        ``h1:`` its lookup record states."""
        records = self.records
        if records is None:
            return ()
        compute: Callable[[BinaryIO], str] = zip_h1 if is_zip else _mod_h1

        def hashed(body: BinaryIO) -> tuple[str, bytes]:
            """The ``h1:``, and the SHA-256 of the bytes it vouches for."""
            h1 = compute(body)
            body.seek(0)
            sha256 = hashlib.sha256()
            while chunk := body.read(1 << 20):
                sha256.update(chunk)
            return h1, sha256.digest()

        async def judge(body: BinaryIO) -> Judgement:
            hashes = await records.hashes(repository, module, version)
            if hashes is None or isinstance(hashes, str):
                return hashes
            expected = hashes[0] if is_zip else hashes[1]
            try:
                actual, sha256 = await IOLoop.current().run_in_executor(
                    None, hashed, body
                )
            except NotAModuleZip as error:
                return f"not a module zip Go accepts: {error}"
            except OSError as error:
                return f"cannot read it back to check it: {error}"
            if actual == expected:
                return Digest("sha256", sha256, "index")
            return _digest(expected, "index"), _digest(actual, "computed")

        return (Inspect(judge),)


def _route(repository: Repository, below: tuple[str, ...]) -> Callable[[], Route]:
    """The module file's route, worked out on a miss only (``Target``)."""
    return lambda: Route(repository.sources, CacheKey(below).url_path)


def _mod_h1(body: BinaryIO) -> str:
    data = body.read(MAX_GO_MOD + 1)
    if len(data) > MAX_GO_MOD:
        raise NotAModuleZip(f"a go.mod over {MAX_GO_MOD} bytes")
    return mod_h1(data)


def _digest(h1: str, origin: str) -> Digest:
    """An ``h1:`` as a ``Digest`` (for the log and the mismatch metrics)."""
    try:
        value = base64.b64decode(h1.removeprefix("h1:"), validate=True)
    except (binascii.Error, ValueError):
        value = h1.encode()
    return Digest("h1", value, origin)
