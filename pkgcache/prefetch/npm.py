"""npm: the version ``latest`` names, and the newest of the same major as
each version clients downloaded, from the package's document.

A tarball downloaded is ``<prefix><name>/-/<base>-<version>.tgz``; the
document is read as npm install reads it (the abbreviated variant), and
a newer tarball is asked for at the same place.
"""

from __future__ import annotations

import json
import posixpath
import urllib.parse
from collections.abc import Sequence

from pkgcache.prefetch.finders import (
    Bodies,
    IndexRead,
    RepositoryFinder,
    Wanted,
    newest,
)
from pkgcache.prefetch.versions import compare_semver, is_prerelease, semver_key

INSTALL_DOCUMENT = (
    "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
)


class NpmFinder(RepositoryFinder):
    def indexes(self, recent: Sequence[str]) -> list[IndexRead]:
        return [
            IndexRead(self.prefix + name, INSTALL_DOCUMENT)
            for name in sorted(self._downloaded(recent))
        ]

    def wanted(
        self, recent: Sequence[str], bodies: Bodies, versions: int
    ) -> list[Wanted]:
        downloaded = self._downloaded(recent)
        found: list[Wanted] = []
        for index, body in bodies.items():
            name = index.path[len(self.prefix) :]
            took = downloaded.get(name)
            if took:
                found.extend(self._newer(name, took, body, versions))
        return found

    def _newer(
        self, name: str, took: set[str], body: bytes, versions: int
    ) -> list[Wanted]:
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            return []
        if not isinstance(document, dict):
            return []
        listed = document.get("versions")
        tags = document.get("dist-tags")
        if not isinstance(listed, dict):
            return []
        targets: set[str] = set()
        latest = tags.get("latest") if isinstance(tags, dict) else None
        if isinstance(latest, str) and all(compare_semver(latest, v) > 0 for v in took):
            targets.add(latest)
        for have in took:
            same_major = [
                version
                for version in listed
                if isinstance(version, str)
                and not is_prerelease(version)
                and _major(version) == _major(have)
                and compare_semver(version, have) > 0
            ]
            if same_major:
                targets.add(max(same_major, key=lambda v: semver_key(v) or ()))
        candidates = []
        for version in targets:
            tarball = _tarball(listed.get(version))
            if tarball is not None:
                path = f"{self.prefix}{name}/-/{tarball}"
                candidates.append(Wanted(path, name, version))
        return newest(candidates, versions, compare_semver)

    def _downloaded(self, recent: Sequence[str]) -> dict[str, set[str]]:
        """Package name -> versions of its tarballs clients downloaded."""
        found: dict[str, set[str]] = {}
        for path in recent:
            if not path.startswith(self.prefix) or "/-/" not in path:
                continue
            name, _, filename = path[len(self.prefix) :].partition("/-/")
            name = urllib.parse.unquote(name)
            filename = urllib.parse.unquote(filename)
            base = name.rsplit("/", 1)[-1]
            if not (filename.startswith(base + "-") and filename.endswith(".tgz")):
                continue
            version = filename[len(base) + 1 : -len(".tgz")]
            if semver_key(version) is not None:
                found.setdefault(name, set()).add(version)
        return found


def _major(version: str) -> object:
    key = semver_key(version)
    return None if key is None else key[0][0]  # type: ignore[index]


def _tarball(entry: object) -> str | None:
    """The file name of a version's tarball, from its ``dist.tarball``."""
    if not isinstance(entry, dict):
        return None
    dist = entry.get("dist")
    url = dist.get("tarball") if isinstance(dist, dict) else None
    if not isinstance(url, str):
        return None
    filename = posixpath.basename(urllib.parse.urlsplit(url).path)
    return filename if filename.endswith(".tgz") and "/" not in filename else None
