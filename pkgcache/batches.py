"""Batches: the upstream chunks of one IOLoop turn, passed on together.

A download stores a batch with one ``writev`` and a live client gets it
with one ``sendmsg``, so the 16 KiB chunks libcurl hands over are never
joined. A short write or send leaves the rest of the batch, taken here
without copying.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

#: Most buffers one writev or sendmsg takes. libcurl hands over each HTTP
#: chunk of a chunked body on its own, so a batch can hold thousands.
IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024


def without_first(
    chunks: Sequence[bytes | memoryview], count: int
) -> list[bytes | memoryview]:
    """The chunks after their first ``count`` bytes, without copying."""
    for index, chunk in enumerate(chunks):
        if count < len(chunk):
            return [memoryview(chunk)[count:], *chunks[index + 1 :]]
        count -= len(chunk)
    return []
