"""A finished download's body as a seekable binary file, for a check that
needs the whole file at once (``finishing.Inspect``: a Go module zip's
``h1:`` reads the zip's directory at its end first).

The body is what the partial file holds followed by the last batch,
which the download holds back (unstored, unsent) until the checks let it
through; reading costs no copy of the file into memory. The reader has a
descriptor of its own (``pread``), so it may be used from a worker thread
while the download waits on the IOLoop.
"""

from __future__ import annotations

import io

from pkgcache.store.partial import PartialReader


class BodyFile(io.RawIOBase):
    """``stored`` bytes read from ``reader``, then ``tail``."""

    def __init__(self, reader: PartialReader | None, stored: int, tail: bytes) -> None:
        super().__init__()
        self._reader = reader
        self._stored = stored if reader is not None else 0
        self._tail = tail
        self._size = self._stored + len(tail)
        self._at = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._at, io.SEEK_END: self._size}
        at = base[whence] + offset
        if at < 0:
            raise ValueError("negative seek position")
        self._at = at
        return at

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), max(0, self._size - self._at))
        done = 0
        while done < wanted:
            at = self._at + done
            if at < self._stored:
                assert self._reader is not None
                chunk = self._reader.read(at, min(wanted - done, self._stored - at))
                if not chunk:
                    raise OSError("the partial file is shorter than written")
            else:
                start = at - self._stored
                chunk = self._tail[start : start + wanted - done]
            view[done : done + len(chunk)] = chunk
            done += len(chunk)
        self._at += done
        return done

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        super().close()
