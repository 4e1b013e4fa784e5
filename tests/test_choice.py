"""The request choice (``serving/choice.py``), in-process: one action per
situation, with the repository's policies and the time given, so no test
has to wait for a copy to go stale."""

from __future__ import annotations

import dataclasses

import pytest

from pkgcache.fetching.upstream import Outcome
from pkgcache.observe.results import Result
from pkgcache.repositories.freshness import Freshness
from pkgcache.repositories.network import NetworkMode
from pkgcache.repositories.rules import Policy
from pkgcache.serving.choice import (
    Action,
    Ended,
    Ending,
    Situation,
    choose,
    conclude,
)
from pkgcache.store.meta import Validators

NOW = 1_000_000.0
FRESH_FOR = Freshness(fresh_for=60.0, stale_if_error=3600.0)
ONLINE = NetworkMode.ONLINE
OFFLINE = NetworkMode.OFFLINE


def confirmed(seconds_ago: float) -> Validators:
    return Validators('"e"', None, "http://origin", NOW - seconds_ago)


def situation(**changes: object) -> Situation:
    base = Situation(
        method="GET",
        policy=Policy.IMMUTABLE,
        document=False,
        private=False,
        cached=False,
        validators=None,
        in_flight=False,
        known_missing=False,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def chosen(
    mode: NetworkMode = ONLINE, now: float = NOW, **changes: object
) -> tuple[Action, Result]:
    choice = choose(situation(**changes), FRESH_FOR, mode, now)
    return choice.action, choice.result


def test_a_stored_immutable_file_is_a_hit_however_old():
    assert chosen(cached=True) == (Action.SERVE_STORED, Result.HIT)
    assert chosen(cached=True, now=NOW * 10) == (Action.SERVE_STORED, Result.HIT)


def test_a_miss_starts_a_download_and_a_download_in_flight_is_joined():
    assert chosen() == (Action.START, Result.MISS)
    assert chosen(in_flight=True) == (Action.JOIN, Result.JOINED)
    assert chosen(in_flight=True, cached=True) == (Action.JOIN, Result.JOINED)


def test_a_volatile_copy_is_served_while_fresh_then_revalidated():
    fresh = {"cached": True, "policy": Policy.VOLATILE, "validators": confirmed(10)}
    assert chosen(**fresh) == (Action.SERVE_STORED, Result.HIT)
    # The same copy a minute later, by the clock alone: no sleeping.
    later = chosen(now=NOW + 60, **fresh)
    assert later == (Action.REVALIDATE, Result.REFRESHED)


def test_a_volatile_copy_without_validators_is_never_fresh():
    stale = chosen(cached=True, policy=Policy.VOLATILE, validators=None)
    assert stale == (Action.REVALIDATE, Result.REFRESHED)


def test_head_of_a_stale_copy_answers_the_copy_without_asking():
    head = chosen(
        method="HEAD", cached=True, policy=Policy.VOLATILE, validators=confirmed(999)
    )
    assert head == (Action.SERVE_STORED, Result.HIT)


def test_head_of_a_document_waits_for_it_like_a_get():
    document = {"document": True, "policy": Policy.VOLATILE}
    assert chosen(method="HEAD", **document) == (Action.START, Result.MISS)


def test_offline_answers_every_stored_copy_and_refuses_everything_else():
    stale = {"cached": True, "policy": Policy.VOLATILE, "validators": confirmed(999)}
    assert chosen(OFFLINE, **stale) == (Action.SERVE_STORED, Result.HIT)
    assert chosen(OFFLINE) == (Action.REFUSE_OFFLINE, Result.ERROR)
    assert chosen(OFFLINE, policy=Policy.PASS)[0] is Action.REFUSE_OFFLINE
    # A search or a ping is a request of its own: offline means never.
    assert chosen(OFFLINE, private=True)[0] is Action.REFUSE_OFFLINE
    assert chosen(OFFLINE, private=True, method="HEAD")[0] is Action.REFUSE_OFFLINE


def test_a_path_missing_a_moment_ago_is_answered_from_memory():
    assert chosen(known_missing=True) == (Action.ANSWER_NEGATIVE, Result.NEGATIVE)
    # A stored copy or a download in flight outranks the remembered 404.
    assert chosen(known_missing=True, cached=True)[0] is Action.SERVE_STORED
    assert chosen(known_missing=True, in_flight=True)[0] is Action.JOIN


def test_head_of_an_uncached_file_or_a_pass_through_asks_with_head():
    assert chosen(method="HEAD") == (Action.ASK_HEAD, Result.MISS)
    assert chosen(method="HEAD", private=True) == (Action.ASK_HEAD, Result.PASS)
    assert chosen(private=True) == (Action.PASS_THROUGH, Result.PASS)


def test_a_pass_policy_never_answers_a_stored_copy():
    assert chosen(policy=Policy.PASS, cached=True) == (Action.START, Result.PASS)


def ended(**changes: object) -> Ended:
    base = Ended(
        outcome=Outcome.COMPLETE,
        stored=False,
        kept=False,
        stale_allowed=False,
        passing=False,
        document=False,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "ending"),
    [
        ({"stored": True}, Ending.SERVE_STORED),
        ({"outcome": Outcome.NOT_MODIFIED, "stored": True}, Ending.SERVE_STORED),
        ({"kept": True}, Ending.SERVE_KEPT),
        ({"outcome": Outcome.FAILED, "stale_allowed": True}, Ending.SERVE_STALE),
        ({"outcome": Outcome.TIMEOUT, "stale_allowed": True}, Ending.SERVE_STALE),
        ({"outcome": Outcome.FAILED}, Ending.FAIL),
        # Gone upstream is gone: the stale copy is not served for a 404.
        ({"outcome": Outcome.NOT_FOUND, "stale_allowed": True}, Ending.FAIL),
        ({}, Ending.PASS_THROUGH),
        ({"passing": True}, Ending.FAIL),
        ({"document": True}, Ending.FAIL),
    ],
)
def test_what_a_client_of_an_ended_download_gets(changes, ending):
    assert conclude(ended(**changes)) is ending
