"""PyPI: the newest release's files for the same platforms and Pythons
as the files clients downloaded, from the project's JSON page (PEP 691).

A wheel downloaded for ``cp312-cp312-manylinux_2_17_x86_64`` prefetches
the newer release's wheel with that tag (not every wheel), and its
``.metadata`` when the page says it has one; an sdist downloaded
prefetches the newer sdist. Pre-releases are followed only from a
pre-release; yanked files never.
"""

from __future__ import annotations

import json
import posixpath
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field

from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from pkgcache.prefetch.finders import (
    Bodies,
    IndexRead,
    RepositoryFinder,
    Wanted,
    newest,
)
from pkgcache.prefetch.versions import compare_pep440

JSON_PAGE = "application/vnd.pypi.simple.v1+json"
_DISTRIBUTIONS = (".whl", ".tar.gz", ".zip")


@dataclass
class _Downloaded:
    """What clients took of one project: the newest version, the wheel
    tags, and whether an sdist."""

    newest: Version
    tags: set[frozenset[Tag]] = field(default_factory=set)
    sdist: bool = False


class PypiFinder(RepositoryFinder):
    def indexes(self, recent: Sequence[str]) -> list[IndexRead]:
        return [
            IndexRead(f"{self.prefix}simple/{project}/", JSON_PAGE)
            for project in sorted(_downloaded(recent))
        ]

    def wanted(
        self, recent: Sequence[str], bodies: Bodies, versions: int
    ) -> list[Wanted]:
        downloaded = _downloaded(recent)
        found: list[Wanted] = []
        for index, body in bodies.items():
            project = index.path.rstrip("/").rsplit("/", 1)[-1]
            took = downloaded.get(project)
            if took is not None:
                found.extend(self._newer(project, took, body, versions))
        return found

    def _newer(
        self, project: str, took: _Downloaded, body: bytes, versions: int
    ) -> list[Wanted]:
        try:
            page = json.loads(body)
        except (ValueError, RecursionError):
            return []
        files = page.get("files") if isinstance(page, dict) else None
        if not isinstance(files, list):
            return []
        candidates: list[Wanted] = []
        for entry in files:
            wanted = self._candidate(project, took, entry)
            if wanted is not None:
                candidates.extend(wanted)
        return newest(candidates, versions, compare_pep440)

    def _candidate(
        self, project: str, took: _Downloaded, entry: object
    ) -> list[Wanted] | None:
        if not isinstance(entry, dict) or entry.get("yanked"):
            return None
        filename, url = entry.get("filename"), entry.get("url")
        if not isinstance(filename, str) or not isinstance(url, str):
            return None
        parsed = _parse(filename)
        if parsed is None or parsed[0] != project:
            return None
        _name, version, tags = parsed
        if version <= took.newest or (
            version.is_prerelease and not took.newest.is_prerelease
        ):
            return None
        if tags is None and not took.sdist:
            return None
        if tags is not None and not any(tags & wanted for wanted in took.tags):
            return None
        path = url.split("#", 1)[0]
        if not path.startswith(self.prefix):
            return None  # a link the cache does not serve (no file_sources)
        size = entry.get("size")
        files = [
            Wanted(path, project, str(version), size if isinstance(size, int) else None)
        ]
        if entry.get("core-metadata") or entry.get("data-dist-info-metadata"):
            files.append(Wanted(path + ".metadata", project, str(version)))
        return files


def _parse(filename: str) -> tuple[str, Version, frozenset[Tag] | None] | None:
    """(project, version, wheel tags or None for an sdist), or None."""
    try:
        if filename.endswith(".whl"):
            name, version, _build, tags = parse_wheel_filename(filename)
            return canonicalize_name(name), version, tags
        if filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            return canonicalize_name(name), version, None
    except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
        return None
    return None


def _downloaded(recent: Sequence[str]) -> dict[str, _Downloaded]:
    found: dict[str, _Downloaded] = {}
    for path in recent:
        filename = urllib.parse.unquote(posixpath.basename(path))
        if "/simple/" in path and not filename.endswith(_DISTRIBUTIONS):
            continue
        parsed = _parse(filename)
        if parsed is None:
            continue
        project, version, tags = parsed
        took = found.setdefault(project, _Downloaded(version))
        took.newest = max(took.newest, version)
        if tags is None:
            took.sdist = True
        else:
            took.tags.add(tags)
    return found
