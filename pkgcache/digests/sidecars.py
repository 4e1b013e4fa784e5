"""Checksum files published beside a file (Maven's ``.sha512``,
``.sha256``, ``.sha1``): which names they have, and the digest one
states. Pure.

A sidecar holds the hex digest of its file, alone or followed by the
file's name (``HEX  name``, as ``sha1sum`` writes). Older repositories
also hold BSD lines (``SHA1 (name) = HEX``) and ``gpg --print-md``'s
spaced groups (``name: AB12 CD34 ...``), which are read too. Anything
else, or more than ``MAX_SIDECAR`` bytes, states nothing.
"""

from __future__ import annotations

import re

from pkgcache.digests.values import Digest, from_hex

#: The sidecars looked for, strongest first. ``.md5`` is not: MD5 catches
#: a mirror's mistakes but anyone can make a file that matches one.
SIDECARS = ("sha512", "sha256", "sha1")
#: Every checksum extension: such a file is never itself checked against
#: sidecars (no ``.jar.sha1.sha1``).
CHECKSUM_EXTENSIONS = (".md5", ".sha1", ".sha256", ".sha512")
#: A sidecar longer than this is not one: a SHA-512 line with a long file
#: name is about 400 bytes.
MAX_SIDECAR = 4096
#: What a sidecar stated, recorded as (the log names it; trusted like an
#: index: the repository published it for that very file).
ORIGIN = "sidecar"

_BSD = re.compile(r"[A-Za-z0-9-]+ ?\(.*\) ?= ?([0-9A-Fa-f]+)")


def is_sidecar(name: str) -> bool:
    """Is ``name`` a checksum file (of any algorithm, md5 included)?"""
    return name.endswith(CHECKSUM_EXTENSIONS)


def parse_sidecar(algorithm: str, data: bytes) -> Digest | None:
    """The ``algorithm`` digest ``data`` states; None when it states none
    (too long, not text, no hex of that algorithm's length)."""
    if len(data) > MAX_SIDECAR:
        return None
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    if not text:
        return None
    words = text.split()
    candidates = [words[0], words[-1]]
    bsd = _BSD.fullmatch(text)
    if bsd:
        candidates.append(bsd.group(1))
    _name, colon, spaced = text.partition(":")
    if colon:
        candidates.append("".join(spaced.split()))
    for candidate in candidates:
        digest = from_hex(algorithm, candidate, ORIGIN)
        if digest is not None:
            return digest
    return None
