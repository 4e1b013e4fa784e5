"""oci: the tags clients pulled lately, re-resolved, and what the new
manifest adds, for the platform pulled before.

What clients pulled is read from the request paths they were given:
``/v2/<repository>/<image>/manifests/<tag>``, ``.../manifests/<digest>``
and ``.../blobs/<digest>``, or the same without ``<repository>`` when the
front put it in (containerd's ``?ns=``, a ``default`` repository).

1. ``indexes``: each tag is refreshed with an Accept of the four manifest
   types (as skopeo and containerd send, so the variant refreshed is the
   one they read), and the manifests the client took by digest are read
   (immutable and stored: reading them asks nobody upstream).
2. ``more_indexes``: a platform pulled before is known from an old image
   index that lists a manifest the client took by digest, or else from
   that manifest's config blob (``os``, ``architecture``, ``variant``),
   read when the client pulled it (stored, immutable). The new index's
   entries for those platforms are then read by digest (a few KiB each).
3. ``wanted``: the config and layer blobs of the new manifest (a
   single-platform tag) or of the new entries for the platforms pulled
   before, with their sizes from the manifest, and those entries by
   digest; what the client pulled already is left out.

Everything read is bounded: manifests and configs above ``MAX_DOCUMENT``
are not parsed, at most ``MAX_ENTRIES`` entries of an index and
``MAX_LAYERS`` layers of a manifest are looked at, at most ``MAX_TAGS``
tags and ``MAX_PULLED`` manifests by digest are read per pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pkgcache.prefetch.finders import Bodies, IndexRead, RepositoryFinder, Wanted

#: What skopeo, containerd and docker accept: every manifest type.
ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_INDEX_TYPES = frozenset(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
#: The distribution registry refuses manifests above 4 MiB; configs are
#: a few KiB.
MAX_DOCUMENT = 4 * 1024 * 1024
MAX_ENTRIES = 256
MAX_LAYERS = 512
MAX_TAGS = 256
MAX_PULLED = 1024

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")

Platform = tuple[str, str, str]  # os, architecture, variant ("" if none)


@dataclass
class _Pulled:
    """What clients took of one image: tags, manifests by digest."""

    tags: set[str] = field(default_factory=set)
    manifests: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Descriptor:
    digest: str
    size: int | None
    media_type: str
    platform: Platform | None


class OciFinder(RepositoryFinder):
    """``prefix``: ``/v2/<repository>/``."""

    # The Finder protocol ----------------------------------------------------

    def indexes(self, recent: Sequence[str]) -> list[IndexRead]:
        images, _blobs = self._pulled(recent)
        tags = [
            self._manifest(image, tag)
            for image, pulled in images.items()
            for tag in sorted(pulled.tags)
        ][:MAX_TAGS]
        by_digest = [
            self._manifest(image, digest)
            for image, pulled in images.items()
            for digest in sorted(pulled.manifests)
        ][:MAX_PULLED]
        return tags + by_digest

    def more_indexes(self, recent: Sequence[str], bodies: Bodies) -> list[IndexRead]:
        images, blobs = self._pulled(recent)
        more: list[IndexRead] = []
        for image, pulled in images.items():
            platforms, configs = self._platforms(image, pulled, blobs, bodies)
            more.extend(configs)
            for tag in sorted(pulled.tags):
                for entry in self._entries(image, tag, platforms, bodies):
                    if entry.digest not in pulled.manifests:
                        more.append(self._manifest(image, entry.digest))
        return list(dict.fromkeys(more))

    def wanted(
        self, recent: Sequence[str], bodies: Bodies, versions: int
    ) -> list[Wanted]:
        """``versions`` does not apply: a tag names one manifest."""
        images, blobs = self._pulled(recent)
        found: dict[str, Wanted] = {}
        for image, pulled in images.items():
            name = "/".join(image)
            platforms, _configs = self._platforms(image, pulled, blobs, bodies)
            for tag in sorted(pulled.tags):
                manifests: list[object] = []
                top = _document(bodies.get(self._manifest(image, tag)))
                if _is_manifest(top):
                    manifests.append(top)
                for entry in self._entries(image, tag, platforms, bodies):
                    if entry.digest in pulled.manifests:
                        continue  # the client has it, and its blobs
                    path = self._manifest(image, entry.digest).path
                    found.setdefault(path, Wanted(path, name, tag, entry.size))
                    child = _document(bodies.get(self._manifest(image, entry.digest)))
                    if _is_manifest(child):
                        manifests.append(child)
                for manifest in manifests:
                    for blob in _blobs(manifest):
                        if blob.digest in blobs:
                            continue
                        path = f"{self.prefix}{name}/blobs/{blob.digest}"
                        found.setdefault(path, Wanted(path, name, tag, blob.size))
        return list(found.values())

    # Reading what was pulled ----------------------------------------------

    def _pulled(
        self, recent: Sequence[str]
    ) -> tuple[dict[tuple[str, ...], _Pulled], set[str]]:
        """Per image (path components), its tags and manifests by digest;
        and the digests of every blob pulled (a blob is stored once per
        repository, whatever image named it)."""
        images: dict[tuple[str, ...], _Pulled] = {}
        blobs: set[str] = set()
        for path in recent:
            if path.startswith(self.prefix):
                below = path[len(self.prefix) :]
            elif path.startswith("/v2/"):
                below = path[len("/v2/") :]  # the front named the repository
            else:
                continue
            parts = below.split("/")
            if len(parts) < 3:
                continue
            image, what, reference = tuple(parts[:-2]), parts[-2], parts[-1]
            if not all(_COMPONENT.fullmatch(part) for part in image):
                continue
            digest = _DIGEST.fullmatch(reference) is not None
            if what == "blobs" and digest:
                blobs.add(reference)
            elif what == "manifests" and digest:
                images.setdefault(image, _Pulled()).manifests.add(reference)
            elif what == "manifests" and _TAG.fullmatch(reference):
                images.setdefault(image, _Pulled()).tags.add(reference)
        # An image only pulled by digest has no tag to follow.
        return {image: got for image, got in images.items() if got.tags}, blobs

    def _platforms(
        self,
        image: tuple[str, ...],
        pulled: _Pulled,
        blobs: set[str],
        bodies: Bodies,
    ) -> tuple[set[Platform], list[IndexRead]]:
        """The platforms the client pulled of ``image``, and the config
        blobs still to read to know the rest."""
        platforms: set[Platform] = set()
        manifests: list[object] = []
        for digest in sorted(pulled.manifests):
            document = _document(bodies.get(self._manifest(image, digest)))
            if _is_manifest(document):
                manifests.append(document)
            for entry in _index_entries(document):
                if entry.digest in pulled.manifests and entry.platform:
                    platforms.add(entry.platform)
        configs: list[IndexRead] = []
        for manifest in manifests:
            config = _config(manifest)
            if config is None or config.digest not in blobs:
                continue
            if config.size is None or config.size > MAX_DOCUMENT:
                continue
            read = IndexRead(f"{self.prefix}{'/'.join(image)}/blobs/{config.digest}")
            platform = _config_platform(_document(bodies.get(read)))
            if platform is not None:
                platforms.add(platform)
            elif read not in bodies:
                configs.append(read)
        return platforms, configs

    def _entries(
        self,
        image: tuple[str, ...],
        tag: str,
        platforms: set[Platform],
        bodies: Bodies,
    ) -> list[_Descriptor]:
        """The entries of the tag's (refreshed) index for ``platforms``."""
        document = _document(bodies.get(self._manifest(image, tag)))
        return [
            entry
            for entry in _index_entries(document)
            if entry.platform in platforms and entry.media_type not in _INDEX_TYPES
        ]

    def _manifest(self, image: tuple[str, ...], reference: str) -> IndexRead:
        return IndexRead(
            f"{self.prefix}{'/'.join(image)}/manifests/{reference}", ACCEPT
        )


# Parsing (bounded) ---------------------------------------------------------


def _document(body: bytes | None) -> object:
    if body is None or len(body) > MAX_DOCUMENT:
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _is_manifest(document: object) -> bool:
    return isinstance(document, dict) and isinstance(document.get("layers"), list)


def _descriptor(value: object) -> _Descriptor | None:
    if not isinstance(value, dict):
        return None
    digest = value.get("digest")
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        return None
    size = value.get("size")
    known = size if isinstance(size, int) and size >= 0 else None
    media_type = value.get("mediaType")
    platform = value.get("platform")
    return _Descriptor(
        digest,
        known,
        media_type if isinstance(media_type, str) else "",
        _config_platform(platform) if isinstance(platform, dict) else None,
    )


def _index_entries(document: object) -> list[_Descriptor]:
    if not isinstance(document, dict):
        return []
    entries = document.get("manifests")
    if not isinstance(entries, list):
        return []
    return [
        entry
        for value in entries[:MAX_ENTRIES]
        if (entry := _descriptor(value)) is not None
    ]


def _config(manifest: object) -> _Descriptor | None:
    return _descriptor(manifest.get("config")) if isinstance(manifest, dict) else None


def _blobs(manifest: object) -> list[_Descriptor]:
    """A manifest's config and layers."""
    if not isinstance(manifest, dict):
        return []
    layers = manifest.get("layers")
    found = [_config(manifest)]
    if isinstance(layers, list):
        found.extend(_descriptor(value) for value in layers[:MAX_LAYERS])
    return [blob for blob in found if blob is not None]


def _config_platform(document: object) -> Platform | None:
    """``os``, ``architecture`` and ``variant`` of an image config or of an
    index entry's ``platform``."""
    if not isinstance(document, dict):
        return None
    os_name = document.get("os")
    architecture = document.get("architecture")
    variant = document.get("variant", "")
    if not (
        isinstance(os_name, str)
        and isinstance(architecture, str)
        and isinstance(variant, str)
    ):
        return None
    return os_name, architecture, variant
