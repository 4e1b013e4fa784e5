"""rpm repositories (dnf, yum, zypper): newer versions of the packages
clients downloaded, from the ``primary`` metadata their ``repomd.xml``
names.

The pass refreshes ``repodata/repomd.xml``, then reads the ``primary``
file it names now (its name carries its digest, so it is a new file
when it changed). A package downloaded is ``NAME-VERSION-RELEASE.ARCH.rpm``;
a newer one is a ``<package>`` of the primary with the same name and
arch and a newer ``[epoch:]version-release`` by rpm's ordering.
"""

from __future__ import annotations

import posixpath
import urllib.parse
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from pkgcache.digests.indexes import IndexRefused, unpacking
from pkgcache.prefetch.finders import (
    Bodies,
    IndexRead,
    RepositoryFinder,
    Wanted,
    newest,
    size_of,
)
from pkgcache.prefetch.versions import compare_rpm

_REPOMD = "repodata/repomd.xml"


class RpmFinder(RepositoryFinder):
    def indexes(self, recent: Sequence[str]) -> list[IndexRead]:
        return [IndexRead(path) for path in sorted(recent) if path.endswith(_REPOMD)]

    def more_indexes(self, recent: Sequence[str], bodies: Bodies) -> list[IndexRead]:
        """The primary each refreshed repomd.xml names."""
        found = []
        for index, body in bodies.items():
            root = index.path[: -len(_REPOMD)]
            for data in _elements(body, "data"):
                if data.get("type") != "primary":
                    continue
                location = _child(data, "location")
                href = location.get("href") if location is not None else None
                if href and ".." not in href.split("/") and not href.startswith("/"):
                    found.append(IndexRead(root + urllib.parse.quote(href, safe="/+~")))
        return found

    def wanted(
        self, recent: Sequence[str], bodies: Bodies, versions: int
    ) -> list[Wanted]:
        downloaded = _downloaded(recent)
        found: list[Wanted] = []
        for index, body in bodies.items():
            if index.path.endswith(_REPOMD):
                continue
            root = index.path.split("/repodata/", 1)[0] + "/"
            candidates: dict[tuple[str, str], list[Wanted]] = defaultdict(list)
            for package in _elements(body, "package"):
                name = _text(package, "name")
                arch = _text(package, "arch")
                have = downloaded.get((root, name, arch))
                version_tag = _child(package, "version")
                location = _child(package, "location")
                if have is None or version_tag is None or location is None:
                    continue
                epoch = version_tag.get("epoch", "0")
                version = f"{version_tag.get('ver', '')}-{version_tag.get('rel', '')}"
                if epoch not in ("", "0"):
                    version = f"{epoch}:{version}"
                href = location.get("href", "")
                if not href or ".." in href.split("/") or href.startswith("/"):
                    continue
                if compare_rpm(version, have) <= 0:
                    continue
                size_tag = _child(package, "size")
                size = size_tag.get("package", "") if size_tag is not None else ""
                candidates[(name, arch)].append(
                    Wanted(
                        root + urllib.parse.quote(href, safe="/+~"),
                        name,
                        version,
                        size_of(size),
                    )
                )
            for files in candidates.values():
                found.extend(newest(files, versions, compare_rpm))
        return found


def _elements(body: bytes, tag: str) -> Iterator[ElementTree.Element]:
    """Each element named ``tag`` (any namespace) of a metadata file of
    any compression, one at a time, cleared after use. A document with a
    DTD is refused (no entity expansion from an upstream)."""
    try:
        # typeshed's generic parameters differ across versions: read loosely.
        parser: Any = ElementTree.XMLPullParser(events=("end",))
        for piece in unpacking(body):
            if b"<!DOCTYPE" in piece or b"<!ENTITY" in piece:
                return
            parser.feed(piece)
            for _event, element in parser.read_events():
                if not isinstance(element, ElementTree.Element):
                    continue
                if _local(element.tag) == tag:
                    yield element
                    element.clear()
    except (IndexRefused, ElementTree.ParseError):
        return


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ElementTree.Element, tag: str) -> ElementTree.Element | None:
    for child in element:
        if _local(child.tag) == tag:
            return child
    return None


def _text(element: ElementTree.Element, tag: str) -> str:
    child = _child(element, tag)
    return (child.text or "").strip() if child is not None else ""


def _downloaded(recent: Sequence[str]) -> dict[tuple[str, str, str], str]:
    """(repository root, name, arch) -> the newest version downloaded."""
    found: dict[tuple[str, str, str], str] = {}
    for path in recent:
        filename = urllib.parse.unquote(posixpath.basename(path))
        if not filename.endswith(".rpm") or filename.endswith(".src.rpm"):
            continue
        stem, _, arch = filename[: -len(".rpm")].rpartition(".")
        parts = stem.rsplit("-", 2)
        if len(parts) != 3 or not arch:
            continue
        name, version = parts[0], f"{parts[1]}-{parts[2]}"
        root = _root_of(path)
        key = (root, name, arch)
        if key not in found or compare_rpm(version, found[key]) > 0:
            found[key] = version
    return found


def _root_of(path: str) -> str:
    """The repository root a package path lies under: where repodata/ is,
    taken as the folder above ``Packages/`` or the package's own folder."""
    folder = posixpath.dirname(path)
    while folder and folder != "/":
        name = posixpath.basename(folder)
        if name == "Packages" or (len(name) == 1 and name.isalnum()):
            folder = posixpath.dirname(folder)
            continue
        break
    return folder + "/"
