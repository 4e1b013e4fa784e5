"""A download's body kept in memory: the body kind for a download the
cache does not store (a pass-through, a file over ``max_size``, a full or
failing disk), so that a client that comes after its end (every small
miss: the whole response arrives in one IOLoop turn) still gets it."""

from __future__ import annotations

from collections.abc import Callable, Sequence


class MemoryCopy:
    """The body so far while it fits ``limit()`` bytes (``client_buffer``,
    read at each batch so a reload applies); past it, dropped for good:
    a later client then gets a pass-through of its own."""

    def __init__(self, limit: Callable[[], int], start: bytes = b"") -> None:
        self._limit = limit
        self._chunks: list[bytes] | None = [start] if start else []
        self._size = len(start)

    def add(self, chunks: Sequence[bytes | memoryview]) -> None:
        if self._chunks is None:
            return
        self._size += sum(map(len, chunks))
        if self._size > self._limit():
            self._chunks = None
        else:
            self._chunks.extend(bytes(chunk) for chunk in chunks)

    def replace(self, body: bytes) -> None:
        """The whole body is now ``body`` (a rewritten page), whatever its
        size: it was kept so far, and one page is all it holds."""
        self._chunks, self._size = [body], len(body)

    def whole(self) -> bytes | None:
        """Every byte added, or None once the copy was dropped."""
        return None if self._chunks is None else b"".join(self._chunks)
