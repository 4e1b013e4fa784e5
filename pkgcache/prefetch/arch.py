"""Arch Linux repositories: newer versions of the packages clients
downloaded, from the repository databases (``core.db``...) they use, each
with its ``.sig``.

A package downloaded is ``NAME-PKGVER-PKGREL-ARCH.pkg.tar.*`` beside its
database; a newer one is a ``desc`` of the refreshed database with the same
``NAME`` and ``ARCH`` and a ``VERSION`` newer by pacman's ``vercmp``.
"""

from __future__ import annotations

import posixpath
import urllib.parse
from collections import defaultdict
from collections.abc import Sequence

from pkgcache.digests.indexes import IndexRefused, arch_descs
from pkgcache.prefetch.finders import (
    Bodies,
    IndexRead,
    RepositoryFinder,
    Wanted,
    newest,
    size_of,
)
from pkgcache.prefetch.versions import compare_arch


class ArchFinder(RepositoryFinder):
    def indexes(self, recent: Sequence[str]) -> list[IndexRead]:
        return [IndexRead(path) for path in sorted(recent) if path.endswith(".db")]

    def wanted(
        self, recent: Sequence[str], bodies: Bodies, versions: int
    ) -> list[Wanted]:
        downloaded = _downloaded(recent)
        found: list[Wanted] = []
        for index, body in bodies.items():
            folder = posixpath.dirname(index.path)
            candidates: dict[tuple[str, str], list[Wanted]] = defaultdict(list)
            try:
                for fields in arch_descs(body):
                    name, arch = fields.get("NAME", ""), fields.get("ARCH", "")
                    version = fields.get("VERSION", "")
                    filename = fields.get("FILENAME", "")
                    have = downloaded.get((folder, name, arch))
                    if have is None or not filename or "/" in filename:
                        continue
                    if compare_arch(version, have) <= 0:
                        continue
                    path = folder + "/" + urllib.parse.quote(filename, safe="+~:")
                    size = fields.get("CSIZE", "")
                    candidates[(name, arch)] += [
                        Wanted(path, name, version, size_of(size)),
                        Wanted(path + ".sig", name, version),
                    ]
            except IndexRefused:
                continue
            for files in candidates.values():
                found.extend(newest(files, versions, compare_arch))
        return found


def _downloaded(recent: Sequence[str]) -> dict[tuple[str, str, str], str]:
    """(folder, name, arch) -> the newest version downloaded there."""
    found: dict[tuple[str, str, str], str] = {}
    for path in recent:
        filename = urllib.parse.unquote(posixpath.basename(path))
        if ".pkg.tar" not in filename or filename.endswith(".sig"):
            continue
        stem = filename.split(".pkg.tar", 1)[0]
        parts = stem.rsplit("-", 3)
        if len(parts) != 4:
            continue
        name, pkgver, pkgrel, arch = parts
        key = (posixpath.dirname(path), name, arch)
        version = f"{pkgver}-{pkgrel}"
        if key not in found or compare_arch(version, found[key]) > 0:
            found[key] = version
    return found
