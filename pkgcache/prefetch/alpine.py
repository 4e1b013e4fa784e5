"""Alpine repositories: newer versions of the packages clients
downloaded, from the ``APKINDEX.tar.gz`` beside them.

A package downloaded is ``NAME-VERSION-rN.apk``; a newer one is a block
of the refreshed ``APKINDEX`` with the same ``P:`` (name) and ``A:``
(architecture) and a ``V:`` newer by apk's ordering.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import urllib.parse
from collections import defaultdict
from collections.abc import Iterator, Sequence

from pkgcache.prefetch.finders import (
    Bodies,
    IndexRead,
    RepositoryFinder,
    Wanted,
    newest,
    size_of,
)
from pkgcache.prefetch.versions import compare_apk

#: The APKINDEX text read of one index, at most.
MAX_INDEX = 256 * 1024 * 1024


class AlpineFinder(RepositoryFinder):
    def indexes(self, recent: Sequence[str]) -> list[IndexRead]:
        return [
            IndexRead(path)
            for path in sorted(recent)
            if posixpath.basename(path) == "APKINDEX.tar.gz"
        ]

    def wanted(
        self, recent: Sequence[str], bodies: Bodies, versions: int
    ) -> list[Wanted]:
        downloaded = _downloaded(recent)
        found: list[Wanted] = []
        for index, body in bodies.items():
            folder = posixpath.dirname(index.path)
            arch = posixpath.basename(folder)
            candidates: dict[str, list[Wanted]] = defaultdict(list)
            for fields in _blocks(body):
                name, version = fields.get("P", ""), fields.get("V", "")
                have = downloaded.get((folder, name))
                if have is None or fields.get("A", arch) != arch:
                    continue
                if compare_apk(version, have) <= 0:
                    continue
                filename = urllib.parse.quote(f"{name}-{version}.apk", safe="+~")
                size = fields.get("S", "")
                candidates[name].append(
                    Wanted(
                        f"{folder}/{filename}",
                        name,
                        version,
                        size_of(size),
                    )
                )
            for files in candidates.values():
                found.extend(newest(files, versions, compare_apk))
        return found


def _blocks(body: bytes) -> Iterator[dict[str, str]]:
    """The blocks of the ``APKINDEX`` member, as one-letter fields."""
    try:
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
            member = next(
                (m for m in archive if m.name == "APKINDEX" and m.isfile()), None
            )
            if member is None or member.size > MAX_INDEX:
                return
            extracted = archive.extractfile(member)
            text = extracted.read().decode("utf-8", "replace") if extracted else ""
    except (tarfile.TarError, OSError, EOFError):
        return
    for block in text.split("\n\n"):
        yield dict(
            line.split(":", 1) for line in block.splitlines() if line[1:2] == ":"
        )


def _downloaded(recent: Sequence[str]) -> dict[tuple[str, str], str]:
    """(folder, name) -> the newest version downloaded there."""
    found: dict[tuple[str, str], str] = {}
    for path in recent:
        filename = urllib.parse.unquote(posixpath.basename(path))
        if not filename.endswith(".apk"):
            continue
        parts = filename[: -len(".apk")].rsplit("-", 2)
        if len(parts) != 3 or not parts[2].startswith("r"):
            continue
        name, version = parts[0], f"{parts[1]}-{parts[2]}"
        key = (posixpath.dirname(path), name)
        if key not in found or compare_apk(version, found[key]) > 0:
            found[key] = version
    return found
