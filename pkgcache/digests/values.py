"""A digest: an algorithm and the bytes a file must hash to, parsed from
the spellings indexes and headers use (hex, base64, SRI), and ordered by
preference, so the preferred one known is the one checked."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

#: Preferred first. SHA-256 before SHA-512: both are far beyond what a
#: mirror's corruption or tampering can meet, and CPUs with SHA extensions
#: hash SHA-256 about twice as fast (0.6 s a GiB on one core here), which
#: is what a cold miss at link speed pays. md5 and sha1 still catch
#: corruption and a mirror's mistakes, which is what a cache checks for;
#: the signature of the index that named them is the client's business.
ALGORITHMS = ("sha256", "sha512", "sha1", "md5")
SIZES = {name: hashlib.new(name).digest_size for name in ALGORITHMS}


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    value: bytes
    #: Where it was learnt (``path``, ``index``, ``header``), for the log.
    origin: str = "index"

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.value.hex()}"

    @property
    def preference(self) -> int:
        return len(ALGORITHMS) - ALGORITHMS.index(self.algorithm)


def from_hex(algorithm: str, text: str, origin: str = "index") -> Digest | None:
    """A digest written in hex; None when it is not one of that length."""
    name = _algorithm(algorithm)
    if name is None:
        return None
    try:
        value = bytes.fromhex(text.strip())
    except ValueError:
        return None
    return Digest(name, value, origin) if len(value) == SIZES[name] else None


def from_base64(algorithm: str, text: str, origin: str = "index") -> Digest | None:
    """A digest written in base64 (SRI, RFC 9530, ``Digest:``, Content-MD5)."""
    name = _algorithm(algorithm)
    if name is None:
        return None
    try:
        value = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return Digest(name, value, origin) if len(value) == SIZES[name] else None


def from_sri(text: str, origin: str = "index") -> list[Digest]:
    """Subresource Integrity (npm's ``dist.integrity``): ``sha512-<b64>``,
    several separated by spaces."""
    found = []
    for item in text.split():
        algorithm, _, value = item.partition("-")
        digest = from_base64(algorithm, value.split("?", 1)[0], origin)
        if digest is not None:
            found.append(digest)
    return found


def preferred(digests: list[Digest] | tuple[Digest, ...]) -> Digest | None:
    return max(digests, key=lambda digest: digest.preference, default=None)


def _algorithm(name: str) -> str | None:
    """``SHA-256``, ``sha256``, ``SHA256``, ``MD5Sum`` -> hashlib's name."""
    compact = name.strip().lower().replace("-", "").replace("_", "")
    if compact == "md5sum":
        compact = "md5"
    return compact if compact in SIZES else None
