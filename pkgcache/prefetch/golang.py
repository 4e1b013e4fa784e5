"""Go modules (GOPROXY): the newest version of each module clients
downloaded, from its ``@v/list``.

A module downloaded is ``<prefix><module>/@v/<version>.zip`` (the path
case-encoded as Go does); its ``@v/list`` is refreshed and the newest
version in it, newer by semver, has its ``.info``, ``.mod`` and ``.zip``
fetched, each checked against the checksum database as for any client.
Pre-releases are followed only from a pre-release.
"""

from __future__ import annotations

from collections.abc import Sequence

from pkgcache.prefetch.finders import (
    Bodies,
    IndexRead,
    RepositoryFinder,
    Wanted,
    newest,
)
from pkgcache.prefetch.versions import compare_semver, is_prerelease

#: A list longer than this is not read (Go's lists are a few KiB).
MAX_LIST = 4 * 1024 * 1024


class GoFinder(RepositoryFinder):
    def indexes(self, recent: Sequence[str]) -> list[IndexRead]:
        return [
            IndexRead(f"{self.prefix}{module}/@v/list")
            for module in sorted(self._downloaded(recent))
        ]

    def wanted(
        self, recent: Sequence[str], bodies: Bodies, versions: int
    ) -> list[Wanted]:
        downloaded = self._downloaded(recent)
        found: list[Wanted] = []
        for index, body in bodies.items():
            module = index.path[len(self.prefix) : -len("/@v/list")]
            have = downloaded.get(module)
            if have is None or len(body) > MAX_LIST:
                continue
            listed = body.decode("utf-8", "replace").split()
            candidates = [
                Wanted(f"{self.prefix}{module}/@v/{version}.{suffix}", module, version)
                for version in listed
                if compare_semver(version, have) > 0
                and (is_prerelease(have) or not is_prerelease(version))
                for suffix in ("info", "mod", "zip")
            ]
            found.extend(newest(candidates, versions, compare_semver))
        return found

    def _downloaded(self, recent: Sequence[str]) -> dict[str, str]:
        """Module (as the URL spells it) -> the newest version downloaded."""
        found: dict[str, str] = {}
        for path in recent:
            if not path.startswith(self.prefix) or not path.endswith(".zip"):
                continue
            module, marker, file = path[len(self.prefix) :].rpartition("/@v/")
            if not marker or not module or "/" in file:
                continue
            version = file[: -len(".zip")]
            if module not in found or compare_semver(version, found[module]) > 0:
                found[module] = version
        return found
