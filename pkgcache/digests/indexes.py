"""Pure parsers of the distribution indexes that name their files'
digests: apt's ``Packages`` (``Filename`` and ``SHA256``/``SHA512``/
``MD5sum``) and Arch's repository database (``%FILENAME%`` and
``%SHA256SUM%`` in each ``desc``). Compressed or not, judged by the magic
bytes, since a ``by-hash`` name says nothing of the format."""

from __future__ import annotations

import bz2
import io
import lzma
import posixpath
import tarfile
import zlib
from collections.abc import Iterator

from pkgcache.digests.values import Digest, from_hex

#: Largest index we unpack (a Debian main Packages is about 60 MB).
MAX_UNPACKED = 1024 * 1024 * 1024


def unpacked(data: bytes) -> bytes:
    """``data`` decompressed by its magic (gzip, xz, bzip2), or as it is;
    empty when it would unpack to more than ``MAX_UNPACKED`` or is broken
    (an index that cannot be read names no digest)."""
    try:
        if data[:2] == b"\x1f\x8b":
            gunzip = zlib.decompressobj(wbits=47)
            text = gunzip.decompress(data, MAX_UNPACKED)
            return b"" if gunzip.unconsumed_tail else text
        unpacker: lzma.LZMADecompressor | bz2.BZ2Decompressor
        if data[:6] == b"\xfd7zXZ\x00":
            unpacker = lzma.LZMADecompressor()
        elif data[:3] == b"BZh":
            unpacker = bz2.BZ2Decompressor()
        else:
            return data
        text = unpacker.decompress(data, max_length=MAX_UNPACKED)
        return b"" if len(text) >= MAX_UNPACKED else text
    except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError):
        return b""


_APT_FIELDS = {"sha256": "sha256", "sha512": "sha512", "md5sum": "md5", "sha1": "sha1"}


def apt_packages(data: bytes) -> Iterator[tuple[str, tuple[Digest, ...]]]:
    """``(Filename, digests)`` of each stanza of a Packages file (any
    compression); nothing when it is not one."""
    text = unpacked(data)
    if not (text.startswith(b"Package:") or b"\nPackage:" in text[:4096]):
        return
    for stanza in text.split(b"\n\n"):
        filename = None
        digests = []
        for line in stanza.split(b"\n"):
            name, _, value = line.partition(b":")
            field = name.strip().lower().decode("ascii", "replace")
            if field == "filename":
                filename = value.strip().decode("utf-8", "replace")
            elif field in _APT_FIELDS:
                digest = from_hex(_APT_FIELDS[field], value.decode("ascii", "replace"))
                if digest is not None:
                    digests.append(digest)
        if filename and digests:
            yield posixpath.normpath(filename), tuple(digests)


def arch_database(data: bytes) -> Iterator[tuple[str, tuple[Digest, ...]]]:
    """``(file name, digests)`` of each package of a pacman database (a tar
    archive, any compression Python reads); nothing when it is not one."""
    try:
        archive = tarfile.open(fileobj=io.BytesIO(unpacked(data)), mode="r:")  # noqa: SIM115
    except (tarfile.TarError, OSError, EOFError):
        return
    with archive:
        for member in archive:
            if not member.isfile() or posixpath.basename(member.name) != "desc":
                continue
            extracted = archive.extractfile(member)
            if extracted is None:
                continue
            fields = _desc_fields(extracted.read().decode("utf-8", "replace"))
            filename = fields.get("FILENAME")
            digests = [
                digest
                for name, algorithm in (("SHA256SUM", "sha256"), ("MD5SUM", "md5"))
                if (digest := from_hex(algorithm, fields.get(name, ""))) is not None
            ]
            if filename and digests and "/" not in filename:
                yield filename, tuple(digests)


def _desc_fields(text: str) -> dict[str, str]:
    fields = {}
    for block in text.split("\n\n"):
        lines = block.strip().split("\n")
        if len(lines) >= 2 and lines[0].startswith("%") and lines[0].endswith("%"):
            fields[lines[0].strip("%")] = lines[1].strip()
    return fields
