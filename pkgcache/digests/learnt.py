"""Digests a download knows before its first byte: from its path (apt's
``by-hash``, rpm's checksummed ``repodata`` names) and from the upstream's
response headers (RFC 9530 ``Repr-Digest``/``Content-Digest``, the older
``Digest``, ``Content-MD5``, ``X-Checksum-Sha256``, a registry's
``Docker-Content-Digest``)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from pkgcache.digests.values import Digest, from_base64, from_hex
from pkgcache.store.paths import CacheKey

_BY_HASH = {"SHA256": "sha256", "SHA512": "sha512", "MD5Sum": "md5"}
#: createrepo's unique names: ``<checksum>-primary.xml.gz``; the checksum
#: is of the file as stored (compressed), its length names the algorithm.
_REPODATA = re.compile(r"([0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64}|[0-9a-f]{128})-.+")
_BY_LENGTH = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}
#: RFC 9530 dictionary members: ``sha-256=:<base64>:``.
_STRUCTURED = re.compile(r"([A-Za-z0-9-]+)\s*=\s*:([A-Za-z0-9+/=]+):")


#: A registry's content-addressed files, stored as
#: ``v2/<repository>/.../(blobs|manifests)/<algorithm>/<hex>``.
_CONTENT_ADDRESSED = ("blobs", "manifests")
_OCI_ALGORITHMS = ("sha256", "sha512")


def from_path(key: CacheKey) -> list[Digest]:
    segments = key.segments
    if (
        len(segments) >= 4
        and segments[0] == "v2"
        and segments[-3] in _CONTENT_ADDRESSED
        and segments[-2] in _OCI_ALGORITHMS
    ):
        found = from_hex(segments[-2], segments[-1], "path")
        return [found] if found else []
    if len(segments) >= 3 and segments[-3] == "by-hash" and segments[-2] in _BY_HASH:
        found = from_hex(_BY_HASH[segments[-2]], segments[-1], "path")
        return [found] if found else []
    if len(segments) >= 2 and segments[-2] == "repodata":
        match = _REPODATA.fullmatch(segments[-1])
        if match:
            checksum = match.group(1)
            found = from_hex(_BY_LENGTH[len(checksum)], checksum, "path")
            return [found] if found else []
    return []


def from_headers(headers: Mapping[str, str]) -> list[Digest]:
    """Digests of the whole representation the upstream states. A
    ``Content-Digest`` describes the body as sent, which is the file here:
    we ask for no content coding (``Accept-Encoding: identity``)."""
    found: list[Digest] = []
    for name in ("Repr-Digest", "Content-Digest"):
        for algorithm, value in _STRUCTURED.findall(headers.get(name, "")):
            digest = from_base64(algorithm, value, "header")
            if digest:
                found.append(digest)
    for item in headers.get("Digest", "").split(","):
        algorithm, _, value = item.strip().partition("=")
        digest = from_base64(algorithm, value, "header") if value else None
        if digest:
            found.append(digest)
    md5 = headers.get("Content-MD5")
    if md5:
        digest = from_base64("md5", md5, "header")
        if digest:
            found.append(digest)
    algorithm, _, value = headers.get("Docker-Content-Digest", "").partition(":")
    if algorithm in _OCI_ALGORITHMS and value:
        digest = from_hex(algorithm, value.strip(), "header")
        if digest:
            found.append(digest)
    sha256 = headers.get("X-Checksum-Sha256")
    if sha256:
        digest = from_hex("sha256", sha256, "header")
        if digest:
            found.append(digest)
    return found
