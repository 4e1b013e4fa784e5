"""How a download fetches and what it keeps (``FetchPlan``), and what it
asks of its readers (``Reader``, ``ReaderState``): the seams between the
handler that starts a download, the download, and its clients."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from pkgcache.fetching.finishing import Step, Verify
from pkgcache.fetching.upstream import Route
from pkgcache.store.meta import Validators


class ReaderState(enum.Enum):
    """Where a reader gets its bytes: from the partial file at its own pace
    (FOLLOWING), from each batch as it arrives (LIVE), or no longer (DONE)."""

    FOLLOWING = "following"
    LIVE = "live"
    DONE = "done"


class Reader(Protocol):
    """One client's view of a download (``serving/clientstream.py``)."""

    state: ReaderState

    def feed(self, chunks: list[bytes], size: int) -> None:
        """A batch, while the reader is LIVE."""

    def wake(self) -> None:
        """The download ended, or stopped feeding this reader."""


@dataclass(frozen=True)
class FetchPlan:
    """How a download fetches and what it keeps: the route (sources and
    path), the stored copy's validators when it revalidates one (a
    conditional request; 304 = NOT_MODIFIED), whether the new file's
    validators are recorded (volatile files), and whether it is kept at
    all (``pass`` files are streamed, never stored)."""

    route: Route | None = None
    revalidating: Validators | None = None
    record_validators: bool = False
    keep: bool = True
    #: The repository it is for, for the metrics.
    repository: str = "-"
    #: Seconds a 4xx from every source is remembered (``Downloads``).
    negative_for: float = 0.0
    #: Request headers every source is sent (a registry's Accept).
    request_headers: tuple[tuple[str, str], ...] = ()
    #: What is done between the last byte and the end, in order
    #: (``finishing.py``): the digest check, a registry page's rewrite.
    finishing: tuple[Step, ...] = (Verify(),)
    #: Revalidate with a HEAD instead of a conditional GET: the stored
    #: copy is current when the HEAD's ``Docker-Content-Digest`` is the
    #: one recorded (a registry's manifest by tag: HEADs are not counted
    #: against pull limits). A different one, or none recorded: one GET.
    revalidate_by_head: bool = False
    #: Once published and verified, the file is linked at
    #: ``<folder>/<algorithm>/<hex>`` of the digest it matched too.
    digest_folder: tuple[str, ...] = ()
