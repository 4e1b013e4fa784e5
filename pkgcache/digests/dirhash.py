"""Go's ``h1:`` hashes (``golang.org/x/mod/sumdb/dirhash.Hash1``) and the
checksum database's lookup records that state them.

``h1:`` is not a hash of the file's bytes: it is SHA-256 over the sorted
lines ``"<hex sha256 of a file>  <name>\\n"``, one per file of a module
zip (names as written in the zip, ``module@version/`` included), or the
one line of a ``go.mod`` named ``go.mod``. So a zip's ``h1:`` needs the
whole zip at once: ``zip_h1`` reads it in a thread (the caller's), bounded
whatever the zip claims: the central directory is sized from the
end record before ``zipfile`` reads it, and the files may hold at most
what Go itself accepts in a module (500 MiB uncompressed).

A lookup record (``<sumdb>/lookup/<module>@<version>``) is the record's
id, the hash lines ``<module> <version> h1:...`` and
``<module> <version>/go.mod h1:...``, a blank line and the signed tree
note. Only the hash lines matter here: the go client checks signatures.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zipfile
from collections.abc import Iterable
from typing import BinaryIO

#: Go refuses module zips whose files hold more (``modzip.MaxZipFile``).
MAX_UNCOMPRESSED = 500 * 1024 * 1024
#: Files in one zip at most: one end record can count no more without
#: zip64, which Go writes only past this many files.
MAX_ENTRIES = 65_535
#: The central directory read at most (about 100 bytes a file).
MAX_DIRECTORY = 16 * 1024 * 1024
#: A lookup record is a few hundred bytes; a larger one is not read.
MAX_RECORD = 64 * 1024
_END_RECORD = b"PK\x05\x06"
_END_SIZE = 22
_READ = 1024 * 1024


class NotAModuleZip(ValueError):
    """The zip cannot be read, or holds more than a module may."""


def hash1(lines: Iterable[tuple[bytes, bytes]]) -> str:
    """``Hash1`` of (name, file sha256) pairs."""
    summary = hashlib.sha256()
    for name, digest in sorted(lines):
        if b"\n" in name:
            raise NotAModuleZip("a file name holds a newline")
        summary.update(b"%s  %s\n" % (digest.hex().encode(), name))
    return "h1:" + base64.b64encode(summary.digest()).decode()


def mod_h1(data: bytes) -> str:
    """The ``h1:`` of a ``go.mod`` file's bytes."""
    return hash1([(b"go.mod", hashlib.sha256(data).digest())])


def zip_h1(file: BinaryIO) -> str:
    """The ``h1:`` of the module zip in ``file`` (seekable); raises
    ``NotAModuleZip``. Reads every file of it: run it off the IOLoop."""
    _check_directory(file)
    try:
        with zipfile.ZipFile(file) as archive:
            entries = archive.infolist()
            if len(entries) > MAX_ENTRIES:
                raise NotAModuleZip(f"more than {MAX_ENTRIES} files")
            # As Go: every name counts, and a name written twice is read
            # from its last entry.
            last = {info.filename: info for info in entries}
            budget = [MAX_UNCOMPRESSED]
            digests = {
                name: _file_digest(archive, info, budget) for name, info in last.items()
            }
            return hash1((_raw_name(info), digests[info.filename]) for info in entries)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as error:
        raise NotAModuleZip(str(error)) from None
    except (EOFError, OSError, RuntimeError, ValueError) as error:
        if isinstance(error, NotAModuleZip):
            raise
        raise NotAModuleZip(f"unreadable: {error}") from None


def _file_digest(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: list[int]
) -> bytes:
    digest = hashlib.sha256()
    with archive.open(info) as member:
        while chunk := member.read(_READ):
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise NotAModuleZip(
                    f"its files hold more than {MAX_UNCOMPRESSED} bytes"
                )
            digest.update(chunk)
    return digest.digest()


def _raw_name(info: zipfile.ZipInfo) -> bytes:
    """The name's bytes as Go sees them: ``zipfile`` decodes names without
    the UTF-8 flag as cp437, Go takes the bytes as they are."""
    if info.flag_bits & 0x800:
        return info.orig_filename.encode("utf-8", "surrogateescape")
    return info.orig_filename.encode("cp437")


def _check_directory(file: BinaryIO) -> None:
    """Refuse a zip whose end record announces more files or a larger
    central directory than a module has, before ``zipfile`` reads it."""
    size = file.seek(0, 2)
    tail_size = min(size, _END_SIZE + 0xFFFF)
    file.seek(size - tail_size)
    tail = file.read(tail_size)
    at = tail.rfind(_END_RECORD)
    if at < 0 or len(tail) - at < _END_SIZE:
        raise NotAModuleZip("no end of central directory")
    entries, directory = struct.unpack("<HI", tail[at + 10 : at + 16])
    if entries == 0xFFFF or directory == 0xFFFFFFFF:
        raise NotAModuleZip("zip64: more files than a module zip has")
    if directory > MAX_DIRECTORY:
        raise NotAModuleZip(f"a central directory over {MAX_DIRECTORY} bytes")
    file.seek(0)


def record_hashes(record: bytes, module: str, version: str) -> tuple[str, str] | None:
    """The ``h1:`` of the zip and of the ``go.mod`` of ``module`` at
    ``version`` that a lookup record states; None when it states neither
    (not that module, or not a record)."""
    if len(record) > MAX_RECORD:
        return None
    text = record.decode("utf-8", "replace")
    zip_hash = mod_hash = None
    for line in text.split("\n\n", 1)[0].splitlines():
        fields = line.split(" ")
        if len(fields) != 3 or fields[0] != module or not fields[2].startswith("h1:"):
            continue
        if fields[1] == version:
            zip_hash = fields[2]
        elif fields[1] == version + "/go.mod":
            mod_hash = fields[2]
    if zip_hash is None or mod_hash is None:
        return None
    return zip_hash, mod_hash
