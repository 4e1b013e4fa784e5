"""Maven repositories: the newest release of each artifact clients
downloaded, from its ``maven-metadata.xml``.

An artifact downloaded is ``<prefix><group path>/<artifactId>/<version>/
<artifactId>-<version>[-<classifier>].<extension>``; the artifact's
``maven-metadata.xml`` is refreshed, and its ``<release>`` (else the last
of its ``<versions>``, the order they were deployed in) is taken when it
is not the version downloaded nor listed before it. The same files
(classifier and extension) of that version are fetched, each checked
against its sidecar as a client's miss is. ``-SNAPSHOT`` versions are
not followed (they change in place; clients revalidate them).
"""

from __future__ import annotations

import posixpath
import urllib.parse
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence

from pkgcache.digests.sidecars import CHECKSUM_EXTENSIONS
from pkgcache.prefetch.finders import Bodies, IndexRead, RepositoryFinder, Wanted

#: A maven-metadata.xml larger than this is not read.
MAX_METADATA = 4 * 1024 * 1024
METADATA = "maven-metadata.xml"


class MavenFinder(RepositoryFinder):
    def indexes(self, recent: Sequence[str]) -> list[IndexRead]:
        return [
            IndexRead(f"{folder}/{METADATA}") for folder in sorted(_downloaded(recent))
        ]

    def wanted(
        self, recent: Sequence[str], bodies: Bodies, versions: int
    ) -> list[Wanted]:
        downloaded = _downloaded(recent)
        found: list[Wanted] = []
        for index, body in bodies.items():
            folder = posixpath.dirname(index.path)
            took = downloaded.get(folder)
            if took is None:
                continue
            listed, release = _versions(body)
            artifact = posixpath.basename(folder)
            for version in _newer(listed, release, took, versions):
                for suffix in sorted({suffix for _version, suffix in took}):
                    name = urllib.parse.quote(f"{artifact}-{version}{suffix}")
                    path = f"{folder}/{urllib.parse.quote(version)}/{name}"
                    found.append(Wanted(path, artifact, version))
        return found


def _newer(
    listed: list[str], release: str | None, took: set[tuple[str, str]], versions: int
) -> list[str]:
    """The versions to fetch, newest first: listed after every version
    downloaded, the release first, at most ``versions`` of them."""
    had = {version for version, _suffix in took}
    positions = [listed.index(version) for version in had if version in listed]
    after = max(positions) if positions else len(listed)
    candidates = [
        version
        for version in reversed(listed[after + 1 :])
        if not version.endswith("-SNAPSHOT")
    ]
    if release and release in candidates:
        candidates.remove(release)
        candidates.insert(0, release)
    return candidates[:versions]


def _versions(body: bytes) -> tuple[list[str], str | None]:
    """``<versions>`` in order and ``<release>`` of a maven-metadata.xml;
    nothing for one too large, with a DTD, or not XML."""
    if len(body) > MAX_METADATA or b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        return [], None
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return [], None
    versioning = root.find("versioning")
    if versioning is None:
        return [], None
    listed = [
        (element.text or "").strip()
        for element in versioning.findall("versions/version")
        if (element.text or "").strip()
    ]
    release = (versioning.findtext("release") or "").strip() or None
    return listed, release


def _downloaded(recent: Sequence[str]) -> dict[str, set[tuple[str, str]]]:
    """Artifact folder (``<prefix>group/path/artifactId``) -> the (version,
    classifier and extension) of each file clients downloaded."""
    found: dict[str, set[tuple[str, str]]] = {}
    for path in recent:
        if path.endswith(CHECKSUM_EXTENSIONS) or path.endswith(METADATA):
            continue
        parts = path.rsplit("/", 3)
        if len(parts) != 4:
            continue
        folder, artifact, version, filename = parts
        artifact_name = urllib.parse.unquote(artifact)
        version = urllib.parse.unquote(version)
        filename = urllib.parse.unquote(filename)
        stem = f"{artifact_name}-{version}"
        if version.endswith("-SNAPSHOT") or not filename.startswith(stem):
            continue
        suffix = filename[len(stem) :]
        if not suffix.startswith((".", "-")):
            continue
        found.setdefault(f"{folder}/{artifact}", set()).add((version, suffix))
    return found
