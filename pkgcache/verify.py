"""``package-cache verify``: check every cached file that has a known
digest, off-line, and say which are wrong.

A file's digests come from its path (apt ``by-hash``, rpm ``repodata``
names), from the digest it matched when it arrived (``CACHE/.meta``,
believed while the file is the same inode of the same size: corruption
in place changes neither), and from the indexes stored beside it (apt
``Packages``, Arch ``.db``, PyPI pages, npm documents, cargo index
files, Maven sidecars), found through the repositories of ``--config``
(without one, every file is taken as generic, and only the path and the
record count). Every known digest
is checked (one pass, a hash per algorithm); a PyPI page counts only for
its own project's files, as in the daemon.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from pkgcache.digests.indexer import index_entries, is_index
from pkgcache.digests.learnt import from_path
from pkgcache.digests.sidecars import MAX_SIDECAR, SIDECARS, parse_sidecar
from pkgcache.digests.values import Digest, from_hex, preferred
from pkgcache.registries import maven
from pkgcache.registries.cargo import cksums
from pkgcache.registries.cargoindex import index_name
from pkgcache.registries.links import Bases
from pkgcache.registries.npmdocuments import dist_digests
from pkgcache.registries.pypi import vouched
from pkgcache.registries.pypipages import page_digests
from pkgcache.repositories.rules import Repositories
from pkgcache.settings import RepositorySettings
from pkgcache.store.cull import scan
from pkgcache.store.meta import MetaStore
from pkgcache.store.paths import CacheKey

_READ = 1024 * 1024


@dataclass(frozen=True)
class Wrong:
    path: str
    expected: Digest
    actual: Digest


@dataclass
class Tally:
    checked: int = 0
    unknown: int = 0
    wrong: int = 0


def verify(
    root: str, repositories: tuple[RepositorySettings, ...]
) -> Iterator[Wrong | Tally]:
    """Yield each wrong file as it is found, then the ``Tally``."""
    root = os.path.abspath(root)
    files = [entry.path for entry in scan(root)]
    keys = {
        path: CacheKey(tuple(os.path.relpath(path, root).split(os.sep)))
        for path in files
    }
    repos = sorted(
        ((r.prefix_segments, r) for r in repositories),
        key=lambda item: -len(item[0]),
    )

    def repository_of(
        key: CacheKey,
    ) -> tuple[tuple[str, ...], RepositorySettings] | None:
        for prefix, repo in repos:
            if key.segments[: len(prefix)] == prefix and len(key.segments) > len(
                prefix
            ):
                return prefix, repo
        return None

    policies = Repositories(repositories)
    book: dict[CacheKey, tuple[Digest, ...]] = {}
    for path, key in keys.items():
        found = repository_of(key)
        if found is None:
            continue
        for entry_key, digests in _index_digests(path, key, *found):
            book[entry_key] = digests
        sidecar = _sidecar_digest(path, key, *found, policies)
        if sidecar is not None:
            book[sidecar[0]] = (*book.get(sidecar[0], ()), sidecar[1])
    meta = MetaStore(root)
    tally = Tally()
    for path, key in keys.items():
        known = [*from_path(key), *book.get(key, ())]
        recorded = _recorded(meta, key, path)
        if recorded is not None:
            known.append(recorded)
        if not known:
            tally.unknown += 1
            continue
        actual = _digests_of(path, {digest.algorithm for digest in known})
        if actual is None:
            continue  # gone meanwhile
        tally.checked += 1
        wrong = [d for d in known if actual[d.algorithm] != d.value]
        if wrong:
            expected = preferred(wrong)
            assert expected is not None
            tally.wrong += 1
            algorithm = expected.algorithm
            yield Wrong(
                path, expected, Digest(algorithm, actual[algorithm], "computed")
            )
    yield tally


def _index_digests(
    path: str, key: CacheKey, prefix: tuple[str, ...], repo: RepositorySettings
) -> list[tuple[CacheKey, tuple[Digest, ...]]]:
    name = key.segments[-1]
    kind = repo.kind
    try:
        if kind in ("debian", "arch") and is_index(kind, key):
            return list(index_entries(kind, key, _read(path)))
        below = key.segments[len(prefix) :]
        page = len(below) == 3 and below[0] == "simple"
        if kind == "pypi" and page and name in ("index.json", "index.html"):
            data = _read(path)
            is_json = data.lstrip()[:1] == b"{"
            kind_of = "application/json" if is_json else "text/html"
            return vouched(
                below[1], repo.prefix, page_digests(data, kind_of, repo.prefix)
            )
        if kind == "npm" and name in (".document.json", ".install-v1.json"):
            package = "/".join(below[:-1])
            bases = Bases(
                tuple(dict.fromkeys((*repo.sources, *repo.file_sources))), repo.prefix
            )
            return dist_digests(_read(path), package, prefix, bases)
        if kind == "cargo" and index_name(below) is not None:
            return cksums(_read(path), name, prefix)
    except (OSError, ValueError):
        return []
    return []


def _sidecar_digest(
    path: str,
    key: CacheKey,
    _prefix: tuple[str, ...],
    repo: RepositorySettings,
    policies: Repositories,
) -> tuple[CacheKey, Digest] | None:
    """A stored Maven sidecar's digest for the artifact beside it, when
    that artifact is one the daemon checks against sidecars (immutable;
    ``registries/maven.py``)."""
    name = key.segments[-1]
    stem, dot, algorithm = name.rpartition(".")
    if repo.kind != maven.KIND or not dot or algorithm not in SIDECARS:
        return None
    artifact = CacheKey((*key.segments[:-1], stem))
    rules = policies.rules_for(artifact)
    if rules is None or not maven.is_checked(rules):
        return None
    try:
        if os.lstat(path).st_size > MAX_SIDECAR:
            return None
        digest = parse_sidecar(algorithm, _read(path))
    except OSError:
        return None
    return None if digest is None else (artifact, digest)


def _recorded(meta: MetaStore, key: CacheKey, path: str) -> Digest | None:
    record = meta.recorded(key)
    if record is None or not record[1].verified:
        return None
    try:
        result = os.lstat(path)
    except OSError:
        return None
    identity = record[0]
    if identity[:2] != [result.st_ino, result.st_size]:
        return None
    algorithm, _, value = record[1].verified.partition(":")
    return from_hex(algorithm, value, "record")


def _digests_of(path: str, algorithms: set[str]) -> dict[str, bytes] | None:
    hashers = [hashlib.new(algorithm) for algorithm in algorithms]
    try:
        with open(path, "rb", buffering=0) as file:
            while chunk := file.read(_READ):
                for hasher in hashers:
                    hasher.update(chunk)
    except OSError:
        return None
    return {hasher.name: hasher.digest() for hasher in hashers}


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def remove(root: str, path: str) -> None:
    """Remove a wrong file and its record."""
    os.unlink(path)
    relative = os.path.relpath(path, os.path.abspath(root))
    meta = MetaStore(root)
    meta.forget(CacheKey(tuple(relative.split(os.sep))))
