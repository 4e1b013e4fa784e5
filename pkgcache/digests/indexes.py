"""Pure parsers of the distribution indexes that name their files'
digests: apt's ``Packages`` (``Filename`` and ``SHA256``/``SHA512``/
``MD5sum``) and Arch's repository database (``%FILENAME%`` and
``%SHA256SUM%`` in each ``desc``). Compressed or not, judged by the magic
bytes, since a ``by-hash`` name says nothing of the format.

Both are read as a stream: an index is unpacked a piece at a time and
parsed an entry at a time, so a small file that unpacks to a huge one
costs time, bounded by ``MAX_UNPACKED``, never memory."""

from __future__ import annotations

import bz2
import io
import lzma
import posixpath
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from pkgcache.digests.values import Digest, from_hex

#: Largest index we unpack (a Debian main Packages is about 60 MB): past
#: it, an index is refused whole (``IndexRefused``).
MAX_UNPACKED = 1024 * 1024 * 1024
#: Longest line of a Packages file, or ``desc`` of a database, we read.
MAX_LINE = 1024 * 1024
#: Bytes unpacked at a time: what parsing holds besides its result.
_CHUNK = 256 * 1024


class IndexRefused(ValueError):
    """The index is broken or past a bound: it names no digest."""


def unpacking(data: bytes) -> Iterator[bytes]:
    """``data`` decompressed by its magic (gzip, xz, bzip2), or as it is,
    in pieces of at most ``_CHUNK`` bytes. Raises ``IndexRefused`` once
    past ``MAX_UNPACKED`` or when the data is broken or cut short."""
    total = 0
    try:
        for piece in _decompressed(data):
            total += len(piece)
            if total > MAX_UNPACKED:
                raise IndexRefused(f"unpacks to more than {MAX_UNPACKED} bytes")
            yield piece
    except (zlib.error, lzma.LZMAError, OSError, EOFError) as error:
        raise IndexRefused(f"cannot unpack: {error}") from None


def _decompressed(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    pieces = (view[at : at + _CHUNK] for at in range(0, len(view), _CHUNK))
    if data[:2] == b"\x1f\x8b":
        gunzip = zlib.decompressobj(wbits=47)
        for piece in pieces:
            yield gunzip.decompress(piece, _CHUNK)
            while gunzip.unconsumed_tail:
                yield gunzip.decompress(gunzip.unconsumed_tail, _CHUNK)
            if gunzip.eof:
                break
        yield gunzip.flush()
        if not gunzip.eof:
            raise EOFError("cut short")
        return
    unpacker: lzma.LZMADecompressor | bz2.BZ2Decompressor
    if data[:6] == b"\xfd7zXZ\x00":
        unpacker = lzma.LZMADecompressor()
    elif data[:3] == b"BZh":
        unpacker = bz2.BZ2Decompressor()
    else:
        for piece in pieces:
            yield bytes(piece)
        return
    for piece in pieces:
        yield unpacker.decompress(piece, _CHUNK)
        while not unpacker.needs_input and not unpacker.eof:
            yield unpacker.decompress(b"", _CHUNK)
        if unpacker.eof:
            break
    if not unpacker.eof:
        raise EOFError("cut short")


def _lines(pieces: Iterable[bytes]) -> Iterator[bytes]:
    carry = b""
    for piece in pieces:
        lines = (carry + piece if carry else piece).split(b"\n")
        carry = lines.pop()
        if len(carry) > MAX_LINE:
            raise IndexRefused(f"a line longer than {MAX_LINE} bytes")
        yield from lines
    if carry:
        yield carry


_APT_FIELDS = {
    b"sha256": "sha256",
    b"sha512": "sha512",
    b"md5sum": "md5",
    b"sha1": "sha1",
}


def apt_packages(data: bytes) -> Iterator[tuple[str, tuple[Digest, ...]]]:
    """``(Filename, digests)`` of each stanza of a Packages file (any
    compression), read a piece at a time: memory is one piece and one
    stanza; nothing when it is not one. Raises ``IndexRefused``."""
    filename = None
    digests: list[Digest] = []
    started = False
    for line in _lines(unpacking(data)):
        if not line.strip():
            if filename and digests:
                yield posixpath.normpath(filename), tuple(digests)
            filename, digests = None, []
            continue
        if not started:
            if not line.startswith(b"Package:"):
                return
            started = True
        if line[:1] in (b" ", b"\t"):
            continue  # a continuation line (a description)
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        field = name.strip().lower()
        if field == b"filename":
            filename = value.strip().decode("utf-8", "replace")
        elif field in _APT_FIELDS:
            digest = from_hex(_APT_FIELDS[field], value.decode("ascii", "replace"))
            if digest is not None:
                digests.append(digest)
    if filename and digests:
        yield posixpath.normpath(filename), tuple(digests)


class _Pieces(io.RawIOBase):
    """The unpacked pieces as a file, read forward only (for tarfile's
    stream mode)."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            self._rest = next(self._pieces, b"")
            if not self._rest:
                return 0
        size = min(len(buffer), len(self._rest))
        buffer[:size] = self._rest[:size]
        self._rest = self._rest[size:]
        return size


def arch_database(data: bytes) -> Iterator[tuple[str, tuple[Digest, ...]]]:
    """``(file name, digests)`` of each package of a pacman database (a tar
    archive, gzip, xz, bzip2 or none), read a member at a time; nothing
    when it is not one. Raises ``IndexRefused``."""
    try:
        archive = tarfile.open(fileobj=_Pieces(unpacking(data)), mode="r|")  # noqa: SIM115
    except (tarfile.TarError, OSError, EOFError):
        return
    with archive:
        while True:
            try:
                member = archive.next()
            except (tarfile.TarError, OSError, EOFError) as error:
                raise IndexRefused(f"not a tar archive: {error}") from None
            if member is None:
                return
            # Stream mode looks no member up again: keep no list of them.
            vars(archive)["members"].clear()
            if not member.isfile() or posixpath.basename(member.name) != "desc":
                continue
            if member.size > MAX_LINE:
                raise IndexRefused(f"a desc larger than {MAX_LINE} bytes")
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
