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
import re
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pkgcache.digests.values import ALGORITHMS, SIZES, Digest, from_hex

#: Largest index we unpack (a Debian main Packages is about 60 MB): past
#: it, an index is refused whole (``IndexRefused``).
MAX_UNPACKED = 1024 * 1024 * 1024
#: Longest stanza of a Packages file, or ``desc`` of a database, we read.
MAX_STANZA = 1024 * 1024
#: Bytes unpacked at a time: what parsing holds besides its result.
_CHUNK = 256 * 1024


class IndexRefused(ValueError):
    """The index is broken or past a bound: it names no digest."""


def _nothing() -> None:
    pass


def unpacking(data: bytes, between: Callable[[], None] = _nothing) -> Iterator[bytes]:
    """``data`` decompressed by its magic (gzip, xz, bzip2), or as it is,
    in pieces of at most ``_CHUNK`` bytes, calling ``between()`` before
    each (the indexer lets other threads run there). Raises
    ``IndexRefused`` once past ``MAX_UNPACKED`` or when the data is broken
    or cut short."""
    total = 0
    try:
        for piece in _decompressed(data):
            between()
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


def _stanza_blocks(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The unpacked text cut after its last blank line: whole stanzas."""
    carry = b""
    for piece in pieces:
        text = carry + piece if carry else piece
        cut = text.rfind(b"\n\n")
        if cut < 0:
            carry = text
        else:
            carry = text[cut + 2 :]
            yield text[:cut]
        if len(carry) > MAX_STANZA:
            raise IndexRefused(f"a stanza longer than {MAX_STANZA} bytes")
    if carry:
        yield carry


#: The fields of a stanza that name a file and its digests (a field starts
#: a line; continuation lines start with a space).
_APT_FIELD = re.compile(
    rb"^(filename|sha256|sha512|md5sum|sha1)[ \t]*:[ \t]*(\S+)", re.M | re.I
)
_APT_ALGORITHMS = {
    b"sha256": "sha256",
    b"sha512": "sha512",
    b"md5sum": "md5",
    b"sha1": "sha1",
}


def apt_packages(
    data: bytes, between: Callable[[], None] = _nothing
) -> Iterator[tuple[str, tuple[Digest, ...]]]:
    """``(Filename, digests)`` of each stanza of a Packages file (any
    compression), read a piece at a time: memory is one piece and one
    stanza; nothing when it is not one. A stanza's digests are those of
    its preferred algorithm (``values.ALGORITHMS``): one index is one
    source, and its strongest digest says what its weaker ones would.
    Raises ``IndexRefused``."""
    first = True
    for block in _stanza_blocks(unpacking(data, between)):
        if first:
            if not block.strip():
                continue
            if not block.lstrip(b"\n").startswith(b"Package:"):
                return
            first = False
        for stanza in block.split(b"\n\n"):
            filename = None
            digests: list[Digest] = []
            rank = len(ALGORITHMS)
            for name, value in _APT_FIELD.findall(stanza):
                field = name.lower()
                if field == b"filename":
                    filename = value
                    continue
                algorithm = _APT_ALGORITHMS[field]
                if ALGORITHMS.index(algorithm) > rank:
                    continue  # only the preferred algorithm's are kept
                try:
                    raw = bytes.fromhex(value.decode("ascii"))
                except ValueError:
                    continue
                if len(raw) == SIZES[algorithm]:
                    if ALGORITHMS.index(algorithm) < rank:
                        rank, digests = ALGORITHMS.index(algorithm), []
                    digests.append(Digest(algorithm, raw))
            if filename and digests:
                yield filename.decode("utf-8", "replace"), tuple(digests)


class _Pieces(io.RawIOBase):
    """The unpacked pieces as a file, read forward only (for tarfile's
    stream mode)."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._piece = memoryview(b"")
        self._at = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._at >= len(self._piece):
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._piece, self._at = memoryview(piece), 0
        size = min(len(buffer), len(self._piece) - self._at)
        buffer[:size] = self._piece[self._at : self._at + size]
        self._at += size
        return size


def arch_database(
    data: bytes, between: Callable[[], None] = _nothing
) -> Iterator[tuple[str, tuple[Digest, ...]]]:
    """``(file name, digests)`` of each package of a pacman database (a tar
    archive, gzip, xz, bzip2 or none), read a member at a time; nothing
    when it is not one. Raises ``IndexRefused``."""
    for fields in arch_descs(data, between):
        filename = fields.get("FILENAME")
        digests = [
            digest
            for name, algorithm in (("SHA256SUM", "sha256"), ("MD5SUM", "md5"))
            if (digest := from_hex(algorithm, fields.get(name, ""))) is not None
        ]
        if filename and digests and "/" not in filename:
            yield filename, tuple(digests)


def arch_descs(
    data: bytes, between: Callable[[], None] = _nothing
) -> Iterator[dict[str, str]]:
    """The fields of each package's ``desc`` in a pacman database (``NAME``,
    ``VERSION``, ``FILENAME``, ``ARCH``, ``CSIZE``, the sums...), a member
    at a time; nothing when it is not one. Raises ``IndexRefused``."""
    try:
        archive = tarfile.open(fileobj=_Pieces(unpacking(data, between)), mode="r|")  # noqa: SIM115
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
            if member.size > MAX_STANZA:
                raise IndexRefused(f"a desc larger than {MAX_STANZA} bytes")
            extracted = archive.extractfile(member)
            if extracted is None:
                continue
            yield _desc_fields(extracted.read().decode("utf-8", "replace"))


def _desc_fields(text: str) -> dict[str, str]:
    fields = {}
    for block in text.split("\n\n"):
        lines = block.strip().split("\n")
        if len(lines) >= 2 and lines[0].startswith("%") and lines[0].endswith("%"):
            fields[lines[0].strip("%")] = lines[1].strip()
    return fields
