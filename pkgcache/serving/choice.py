"""What to do with a request, decided in one pure function, and what to
serve once the download it waited for has ended, decided in another.

``choose`` takes what is known when a request arrives (its method, the
path's policy, whether a copy is stored and its validators, whether a
download is in flight, whether the path was missing a moment ago) with
the repository's policies (``Freshness``, ``NetworkMode``) and the time,
and names one ``Action`` and the ``Result`` it is logged as. The handler
and the small-hit path both ask it and only carry the action out, so
offline, negative answers and staleness are decided here and nowhere
else.

``conclude`` takes how a download ended and what that left (a stored
copy, a body kept in memory, a stale copy still allowed) and names one
``Ending``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pkgcache.fetching.upstream import Outcome
from pkgcache.observe.results import Result
from pkgcache.repositories.freshness import Freshness
from pkgcache.repositories.network import NetworkMode
from pkgcache.repositories.rules import Policy
from pkgcache.store.meta import Validators


class Action(enum.Enum):
    #: Answer the stored copy (a hit, or a stale copy the mode allows).
    SERVE_STORED = "serve the stored copy"
    #: Follow the download of this path already in flight.
    JOIN = "join the download in flight"
    #: Start the download of this path (registered: others join it).
    START = "start a download"
    #: Start a conditional download of a stored volatile copy.
    REVALIDATE = "revalidate the stored copy"
    #: A request of its own (a query): fetched for this client alone.
    PASS_THROUGH = "pass through, for this client alone"
    #: HEAD of an uncached file: ask the sources with HEAD, fetch nothing.
    ASK_HEAD = "ask the sources with HEAD"
    #: 404: every source said so a moment ago (``negative_for``).
    ANSWER_NEGATIVE = "answer the remembered 404"
    #: 504: not stored, and the repository is offline.
    REFUSE_OFFLINE = "refuse: offline"


@dataclass(slots=True)
class Situation:
    """What is known of a request's target when it arrives."""

    method: str
    policy: Policy
    #: A registry document: clients wait for it whole, HEAD included.
    document: bool
    #: A request no other client may join (a query): never stored.
    private: bool
    #: A complete copy is stored at the target's key.
    cached: bool
    #: The stored copy's validators (None: none recorded).
    validators: Validators | None
    in_flight: bool
    known_missing: bool


@dataclass(frozen=True)
class Choice:
    action: Action
    result: Result


def choose(
    situation: Situation, freshness: Freshness, mode: NetworkMode, now: float
) -> Choice:
    """The one decision of what to do with a request; see the module."""
    online = mode is NetworkMode.ONLINE
    head_only = situation.method == "HEAD" and not situation.document
    if situation.private:
        if not online:
            return Choice(Action.REFUSE_OFFLINE, Result.ERROR)
        return Choice(
            Action.ASK_HEAD if head_only else Action.PASS_THROUGH, Result.PASS
        )
    if situation.in_flight:
        return Choice(Action.JOIN, Result.JOINED)
    if situation.cached and situation.policy is not Policy.PASS:
        stale = situation.policy is Policy.VOLATILE and not freshness.is_fresh(
            situation.validators, now
        )
        if stale and online and not head_only:
            return Choice(Action.REVALIDATE, Result.REFRESHED)
        return Choice(Action.SERVE_STORED, Result.HIT)
    if not online:
        return Choice(Action.REFUSE_OFFLINE, Result.ERROR)
    if situation.known_missing:
        return Choice(Action.ANSWER_NEGATIVE, Result.NEGATIVE)
    if head_only:
        return Choice(Action.ASK_HEAD, Result.MISS)
    if situation.policy is Policy.PASS:
        return Choice(Action.START, Result.PASS)
    return Choice(Action.START, Result.MISS)


class Ending(enum.Enum):
    #: The copy the download published or confirmed (304).
    SERVE_STORED = "serve the stored copy"
    #: The body kept in memory: the cache could not store it.
    SERVE_KEPT = "serve the body kept in memory"
    #: The stale copy: no source answered, within ``stale_if_error``.
    SERVE_STALE = "serve the stale copy"
    #: Fetch it again for this client alone: its bytes went by unstored.
    PASS_THROUGH = "pass through, for this client alone"
    #: The download's error, as an HTTP status.
    FAIL = "answer the download's error"


@dataclass(frozen=True)
class Ended:
    """How a download ended, and what it left for a client that has not
    had a byte of it yet."""

    outcome: Outcome
    #: Its copy is on disk now (published, or confirmed by a 304).
    stored: bool
    #: Its whole body is kept in memory.
    kept: bool
    #: A stale copy exists and its staleness is within the limit.
    stale_allowed: bool
    #: The client's own pass-through already (never another one).
    passing: bool
    #: A registry document (never passed through raw: it is rewritten).
    document: bool


def conclude(ended: Ended) -> Ending:
    """What a client of an ended download gets; see the module."""
    if ended.stored:
        return Ending.SERVE_STORED
    if ended.kept:
        return Ending.SERVE_KEPT
    failed = ended.outcome in (Outcome.FAILED, Outcome.TIMEOUT)
    if failed and ended.stale_allowed:
        return Ending.SERVE_STALE
    complete = ended.outcome is Outcome.COMPLETE
    if complete and not ended.passing and not ended.document:
        return Ending.PASS_THROUGH
    return Ending.FAIL
