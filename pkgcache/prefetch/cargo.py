"""Cargo sparse registries: the newest version of each crate clients
downloaded, from its index file (one JSON line a version).

A crate downloaded is ``<prefix>files/<name>/<name>-<version>.crate``
(the cache's own ``dl``); its index file is refreshed, and the newest
version that is not yanked and newer by semver is fetched, where the
cache checks it against the ``cksum`` of that line as for any client.
Pre-releases are followed only from a pre-release.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence

from pkgcache.prefetch.finders import (
    Bodies,
    IndexRead,
    RepositoryFinder,
    Wanted,
    newest,
)
from pkgcache.prefetch.versions import compare_semver, is_prerelease
from pkgcache.registries.cargoindex import (
    MAX_INDEX_FILE,
    crate_file,
    crate_of_file,
    index_path,
)


class CargoFinder(RepositoryFinder):
    def indexes(self, recent: Sequence[str]) -> list[IndexRead]:
        return [
            IndexRead(self.prefix + "/".join(index_path(name)))
            for name in sorted(self._downloaded(recent))
        ]

    def wanted(
        self, recent: Sequence[str], bodies: Bodies, versions: int
    ) -> list[Wanted]:
        downloaded = self._downloaded(recent)
        by_index = {
            self.prefix + "/".join(index_path(name)): name for name in downloaded
        }
        found: list[Wanted] = []
        for index, body in bodies.items():
            name = by_index.get(index.path)
            if name is None or len(body) > MAX_INDEX_FILE:
                continue
            have = downloaded[name]
            candidates = [
                Wanted(
                    f"{self.prefix}files/{crate}/{crate_file(crate, version)}",
                    crate,
                    version,
                )
                for crate, version in _listed(body)
                if crate == name
                and compare_semver(version, have) > 0
                and (is_prerelease(have) or not is_prerelease(version))
            ]
            found.extend(newest(candidates, versions, compare_semver))
        return found

    def _downloaded(self, recent: Sequence[str]) -> dict[str, str]:
        """Crate -> the newest version clients downloaded."""
        found: dict[str, str] = {}
        for path in recent:
            if not path.startswith(self.prefix):
                continue
            below = tuple(urllib.parse.unquote(path[len(self.prefix) :]).split("/"))
            crate = crate_of_file(below)
            if crate is None:
                continue
            name, version = crate
            if name not in found or compare_semver(version, found[name]) > 0:
                found[name] = version
        return found


def _listed(body: bytes) -> list[tuple[str, str]]:
    """(name, version) of each version line that is not yanked."""
    listed = []
    for line in body.splitlines():
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if not isinstance(entry, dict) or entry.get("yanked"):
            continue
        name, version = entry.get("name"), entry.get("vers")
        if isinstance(name, str) and isinstance(version, str):
            listed.append((name, version))
    return listed
