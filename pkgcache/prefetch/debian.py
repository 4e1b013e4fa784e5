"""Debian (and Ubuntu) repositories: newer versions of the ``.deb`` files
clients downloaded, from the ``Packages`` indexes they use.

A package downloaded is ``pool/.../NAME_VERSION_ARCH.deb``; a newer one
is a stanza of a refreshed ``Packages`` with the same ``Package`` and
``Architecture`` and a ``Version`` newer by Debian's ordering. Clients
that read their indexes by hash (``Acquire-By-Hash: yes``) are followed
through the refreshed ``InRelease``: the by-hash file it names now.
"""

from __future__ import annotations

import posixpath
import re
import urllib.parse
from collections import defaultdict
from collections.abc import Iterator, Sequence

from pkgcache.digests.indexes import IndexRefused, unpacking
from pkgcache.prefetch.finders import (
    Bodies,
    IndexRead,
    RepositoryFinder,
    Wanted,
    newest,
    size_of,
)
from pkgcache.prefetch.versions import compare_debian

_RELEASE_FILES = ("InRelease", "Release")
#: Compressions apt reads, in the order a pass prefers them.
_COMPRESSIONS = (".xz", ".gz", "")
_SHA256_LINE = re.compile(r"^\s+([0-9a-f]{64})\s+(\d+)\s+(\S+)\s*$")
_FIELD = re.compile(rb"^(Package|Version|Architecture|Filename|Size):[ \t]*(\S+)", re.M)


class DebianFinder(RepositoryFinder):
    def indexes(self, recent: Sequence[str]) -> list[IndexRead]:
        """Release files first (a Packages file is checked against the
        Release fetched with it), then the Packages files read by name."""
        releases = [p for p in recent if posixpath.basename(p) in _RELEASE_FILES]
        packages = [p for p in recent if _is_packages(p)]
        return [IndexRead(path) for path in (*sorted(releases), *sorted(packages))]

    def more_indexes(self, recent: Sequence[str], bodies: Bodies) -> list[IndexRead]:
        """For each folder read by hash, the by-hash file of its newest
        Packages, as the refreshed Release names it."""
        folders = {_by_hash_folder(p) for p in recent} - {None}
        found: list[IndexRead] = []
        for index, body in bodies.items():
            if posixpath.basename(index.path) not in _RELEASE_FILES:
                continue
            suite = posixpath.dirname(index.path)
            listed = _release_sha256(body)
            for folder in folders:
                assert folder is not None
                below = (
                    folder[len(suite) + 1 :] if folder.startswith(suite + "/") else None
                )
                if below is None:
                    continue
                for compression in _COMPRESSIONS:
                    digest = listed.get(f"{below}/Packages{compression}")
                    if digest:
                        found.append(IndexRead(f"{folder}/by-hash/SHA256/{digest}"))
                        break
        return found

    def wanted(
        self, recent: Sequence[str], bodies: Bodies, versions: int
    ) -> list[Wanted]:
        downloaded = _downloaded(recent)
        if not downloaded:
            return []
        candidates: dict[tuple[str, str], dict[str, Wanted]] = defaultdict(dict)
        for index, body in bodies.items():
            if posixpath.basename(index.path) in _RELEASE_FILES:
                continue
            root = _archive_root(index.path)
            for fields in _stanzas(body):
                name = fields.get("Package", "")
                arch = fields.get("Architecture", "")
                have = downloaded.get((name, arch))
                version = fields.get("Version", "")
                filename = fields.get("Filename", "")
                if have is None or not filename or compare_debian(version, have) <= 0:
                    continue
                size = fields.get("Size", "")
                path = root + "/" + urllib.parse.quote(filename, safe="/+~")
                candidates[(name, arch)][version] = Wanted(
                    path, name, version, size_of(size)
                )
        found: list[Wanted] = []
        for (_name, _arch), by_version in sorted(candidates.items()):
            found.extend(newest(list(by_version.values()), versions, compare_debian))
        return found


def _is_packages(path: str) -> bool:
    name = posixpath.basename(path)
    return name.split(".", 1)[0] == "Packages" and ".diff" not in path


def _by_hash_folder(path: str) -> str | None:
    """``dists/S/C/binary-A`` for a by-hash read of a Packages file."""
    parts = path.split("/")
    if len(parts) >= 4 and parts[-3] == "by-hash" and parts[-4].startswith("binary-"):
        return "/".join(parts[:-3])
    return None


def _release_sha256(body: bytes) -> dict[str, str]:
    """The SHA256 section of a Release (or InRelease) file: path -> hex."""
    listed: dict[str, str] = {}
    in_section = False
    for line in body.decode("utf-8", "replace").splitlines():
        if not line.startswith(" "):
            in_section = line.rstrip() == "SHA256:"
            continue
        match = _SHA256_LINE.match(line) if in_section else None
        if match:
            listed[match.group(3)] = match.group(1)
    return listed


def _downloaded(recent: Sequence[str]) -> dict[tuple[str, str], str]:
    """(package, architecture) -> the newest version clients downloaded."""
    found: dict[tuple[str, str], str] = {}
    for path in recent:
        name = urllib.parse.unquote(posixpath.basename(path))
        stem, dot, extension = name.rpartition(".")
        if extension not in ("deb", "udeb") or not dot:
            continue
        parts = stem.split("_")
        if len(parts) != 3:
            continue
        package, version, arch = parts
        have = found.get((package, arch))
        if have is None or compare_debian(version, have) > 0:
            found[(package, arch)] = version
    return found


def _archive_root(index_path: str) -> str:
    """Where a Packages file's ``Filename`` values start: the folder that
    holds ``dists/``, or a flat repository's own folder."""
    parts = index_path.split("/")
    if "dists" in parts:
        return "/".join(parts[: parts.index("dists")])
    return "/".join(parts[:-1])


def _stanzas(body: bytes) -> Iterator[dict[str, str]]:
    """The fields prefetch reads of each stanza, one at a time (memory: a
    piece and a stanza); nothing more once the index proves broken (the
    refreshed copy passed the cache's own checks)."""
    carry = b""
    try:
        for piece in unpacking(body):
            text = carry + piece
            cut = text.rfind(b"\n\n")
            if cut < 0:
                carry = text
                continue
            carry = text[cut + 2 :]
            for block in text[:cut].split(b"\n\n"):
                yield _fields(block)
    except IndexRefused:
        return
    if carry.strip():
        yield _fields(carry)


def _fields(block: bytes) -> dict[str, str]:
    return {
        name.decode(): value.decode("utf-8", "replace")
        for name, value in _FIELD.findall(block)
    }
