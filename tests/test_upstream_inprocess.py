"""The upstream in one process: attempts, sources in order, resume, and a
download with two readers, over a scripted transport (``tests/scripted.py``)
instead of the network. The cache is a real ``CacheStore`` in tmp_path."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from tornado.httputil import HTTPHeaders

from pkgcache import config
from pkgcache.clock import ManualClock
from pkgcache.digests.check import Hasher
from pkgcache.fetching.download import Download, State
from pkgcache.fetching.plan import FetchPlan
from pkgcache.fetching.responses import FetchResult, Outcome, ResponseHead
from pkgcache.fetching.transport import ErrorKind
from pkgcache.fetching.upstream import Route, Upstream
from pkgcache.serving.clientstream import ClientStream
from pkgcache.settings import LiveSettings
from pkgcache.store.cache import CacheStore
from pkgcache.store.keeping import Keeping
from pkgcache.store.meta import MetaStore, Validators
from pkgcache.store.paths import cache_key
from tests.scripted import (
    CUT,
    STALL,
    Chunk,
    Fail,
    Gate,
    MemoryOutput,
    Result,
    ScriptedTransport,
    Turn,
    chunks,
    head,
    ok,
)

A = "http://a.test/mirror"
B = "http://b.test/mirror"
KEY = cache_key("/pool/f.tar")
URL_A = A + KEY.url_path
URL_B = B + KEY.url_path
BODY = bytes(range(256)) * 300  # 76800 bytes: several chunks


def live(tmp_path: Path, **values: Any) -> LiveSettings:
    settings = {"sources": [A, B], "cache": str(tmp_path / "cache"), **values}
    return LiveSettings(config.build(settings))


class Received:
    """What ``on_head`` and ``on_chunk`` heard, in order."""

    def __init__(self, accept: bool = True) -> None:
        self.events: list[Any] = []
        self.accept = accept

    def on_head(self, response: ResponseHead) -> bool:
        self.events.append(response.status)
        return self.accept

    def on_chunk(self, chunk: bytes) -> None:
        self.events.append(bytes(chunk))

    @property
    def body(self) -> bytes:
        return b"".join(e for e in self.events if isinstance(e, bytes))


def fetch(
    tmp_path: Path,
    answers: dict[str, list[Any]],
    conditional: dict[str, str] | None = None,
    received: Received | None = None,
    **settings: Any,
) -> tuple[FetchResult, Received, ScriptedTransport]:
    transport = ScriptedTransport(answers)
    upstream = Upstream(live(tmp_path, **settings), transport)
    heard = received or Received()
    result = asyncio.run(
        upstream.fetch(KEY, "GET", heard.on_head, heard.on_chunk, None, conditional)
    )
    return result, heard, transport


def test_a_200_is_complete_with_its_head_before_its_body(tmp_path):
    result, heard, _ = fetch(tmp_path, {URL_A: [ok(BODY)]})
    assert result.outcome is Outcome.COMPLETE
    assert result.source == A
    assert heard.events[0] == 200
    assert heard.body == BODY


@pytest.mark.parametrize("late_lines", [True, False])
def test_chunks_before_the_header_lines_are_held_then_passed_on_in_order(
    tmp_path, late_lines
):
    """tornado delivers a small response's chunks before its header lines,
    or ends the transfer before the lines come at all."""
    headers = {"Content-Length": str(len(BODY))}
    ending = [head(200, headers)] if late_lines else [Result(200, headers)]
    result, heard, _ = fetch(tmp_path, {URL_A: [[*chunks(BODY), *ending]]})
    assert result.outcome is Outcome.COMPLETE
    assert heard.events[0] == 200
    assert heard.body == BODY


def test_only_the_last_header_block_of_a_redirect_chain_counts(tmp_path):
    moved = "http://c.test/elsewhere/f.tar"
    answer = [
        head(100),
        head(302, {"Location": moved}),
        head(200, {"Content-Length": str(len(BODY))}),
        *chunks(BODY),
    ]
    result, heard, _ = fetch(tmp_path, {URL_A: [answer]})
    assert result.outcome is Outcome.COMPLETE
    assert result.head is not None and result.head.url == moved
    assert heard.events == [200, *[c.data for c in chunks(BODY)]]


def test_a_redirect_to_a_folder_is_a_listing_not_the_file(tmp_path):
    answer = [head(301, {"Location": "/mirror/pool/f/"}), *ok(b"<html>")]
    result, heard, _ = fetch(tmp_path, {URL_A: [answer]}, sources=[A])
    assert result.outcome is Outcome.NOT_FOUND
    assert heard.events == []


@pytest.mark.parametrize("status", [404, 410])
def test_404_and_410_from_every_source_are_not_found(tmp_path, status):
    gone = [head(status), Chunk(b"<html>gone</html>")]
    result, heard, _ = fetch(tmp_path, {URL_A: [gone], URL_B: [gone]})
    assert result.outcome is Outcome.NOT_FOUND
    assert result.client_status == 404
    assert heard.events == []


@pytest.mark.parametrize(
    ("status", "client_status"),
    [(403, 502), (408, 502), (429, 503), (500, 502), (503, 503)],
)
def test_other_refusals_are_failures_and_the_next_source_is_asked(
    tmp_path, status, client_status
):
    refusal = [head(status, {"Retry-After": "7"}), Chunk(b"busy")]
    result, heard, transport = fetch(tmp_path, {URL_A: [refusal], URL_B: [refusal]})
    assert result.outcome is Outcome.FAILED
    assert result.client_status == client_status
    assert result.retry_after == ("7" if client_status == 503 else None)
    assert transport.asked(URL_B) == 1
    assert heard.events == []


def test_a_rate_limited_source_is_passed_over_for_the_next(tmp_path):
    result, heard, _ = fetch(tmp_path, {URL_A: [[head(429)]], URL_B: [ok(BODY)]})
    assert result.outcome is Outcome.COMPLETE
    assert result.source == B
    assert heard.body == BODY


def test_one_source_gone_and_one_failing_is_a_failure_not_a_miss(tmp_path):
    result, _, _ = fetch(tmp_path, {URL_A: [[head(404)]], URL_B: [[head(500)]]})
    assert result.outcome is Outcome.FAILED
    result, _, _ = fetch(tmp_path, {URL_A: [[head(429)]], URL_B: [[head(404)]]})
    assert result.outcome is Outcome.FAILED


def test_a_body_that_breaks_is_broken_and_no_other_source_is_asked(tmp_path):
    answer = [*ok(BODY)[:3], CUT]
    result, heard, transport = fetch(tmp_path, {URL_A: [answer], URL_B: [ok(BODY)]})
    assert result.outcome is Outcome.BROKEN
    assert len(heard.body) == 2 * 16384
    assert transport.asked(URL_B) == 0


def test_a_stall_before_the_head_is_a_timeout(tmp_path):
    result, _, _ = fetch(tmp_path, {URL_A: [[STALL]], URL_B: [[STALL]]})
    assert result.outcome is Outcome.TIMEOUT
    assert result.client_status == 504


def test_a_refused_connection_moves_on(tmp_path):
    result, _, _ = fetch(tmp_path, {URL_B: [ok(BODY)]})
    assert result.outcome is Outcome.COMPLETE and result.source == B


def test_both_transfer_encoding_and_content_length_is_refused(tmp_path):
    framed = {"Transfer-Encoding": "chunked", "Content-Length": "10"}
    answer = [head(200, framed), *chunks(BODY)]
    result, heard, _ = fetch(tmp_path, {URL_A: [answer], URL_B: [answer]})
    assert result.outcome is Outcome.FAILED
    assert "Transfer-Encoding" in result.detail
    assert heard.events == []


def test_a_304_to_a_conditional_request_is_not_modified(tmp_path):
    sent = {"If-None-Match": '"v1"'}
    answer = [head(304, {"ETag": '"v1"'})]
    result, _, transport = fetch(tmp_path, {URL_A: [answer]}, conditional=sent)
    assert result.outcome is Outcome.NOT_MODIFIED
    assert transport.requests[0].headers["If-None-Match"] == '"v1"'


def test_a_304_with_another_strong_etag_is_fetched_again_unconditionally(tmp_path):
    sent = {"If-None-Match": '"v1"', "If-Modified-Since": "x", "Accept": "a/b"}
    answers = {URL_A: [[head(304, {"ETag": '"v2"'})], ok(BODY, {"ETag": '"v2"'})]}
    result, heard, transport = fetch(tmp_path, answers, conditional=sent)
    assert result.outcome is Outcome.COMPLETE
    assert heard.body == BODY
    again = transport.requests[1].headers
    assert "If-None-Match" not in again and "If-Modified-Since" not in again
    assert again["Accept"] == "a/b"
    weak = {URL_A: [[head(304, {"ETag": 'W/"v2"'})]]}
    result, _, _ = fetch(tmp_path, weak, conditional=sent)
    assert result.outcome is Outcome.NOT_MODIFIED  # a weak ETag still confirms


def test_a_file_over_max_file_size_is_refused_once_for_all_sources(tmp_path):
    result, heard, transport = fetch(
        tmp_path, {URL_A: [ok(BODY)], URL_B: [ok(BODY)]}, max_file_size=1000
    )
    assert result.outcome is Outcome.TOO_LARGE
    assert result.client_status == 502
    assert heard.events == []
    assert transport.asked(URL_B) == 0


def test_a_body_of_unknown_length_over_max_file_size_is_cut(tmp_path):
    answer = [head(200), *chunks(BODY)]
    result, heard, transport = fetch(
        tmp_path, {URL_A: [answer], URL_B: [answer]}, max_file_size=20000
    )
    assert result.outcome is Outcome.TOO_LARGE
    assert len(heard.body) <= 20000
    assert transport.asked(URL_B) == 0


def test_a_refusal_by_the_cache_moves_on(tmp_path):
    result, _, transport = fetch(
        tmp_path, {URL_A: [ok(BODY)], URL_B: [ok(BODY)]}, received=Received(False)
    )
    assert result.outcome is Outcome.FAILED
    assert transport.asked(URL_B) == 1


def test_a_broken_body_resumes_where_it_broke_from_the_same_source(tmp_path):
    validators = {"ETag": '"e"', "Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT"}
    first = [*ok(BODY, validators)[:3], CUT]
    at = 2 * 16384
    rest = [
        head(
            206,
            {
                **validators,
                "Content-Length": str(len(BODY) - at),
                "Content-Range": f"bytes {at}-{len(BODY) - 1}/{len(BODY)}",
            },
        ),
        *chunks(BODY[at:]),
    ]
    transport = ScriptedTransport({URL_A: [first, rest]})
    upstream = Upstream(live(tmp_path), transport)
    heard = Received()

    async def run() -> FetchResult:
        broken = await upstream.fetch(KEY, "GET", heard.on_head, heard.on_chunk)
        assert broken.outcome is Outcome.BROKEN and broken.head is not None
        return await upstream.resume(
            KEY, broken.head, len(heard.body), broken.source, heard.on_chunk
        )

    result = asyncio.run(run())
    assert result.outcome is Outcome.COMPLETE
    assert heard.body == BODY
    resumed = transport.requests[1].headers
    assert resumed["Range"] == f"bytes={at}-" and resumed["If-Range"] == '"e"'


def test_a_resume_that_answers_another_version_is_refused(tmp_path):
    first_head = ResponseHead(
        200,
        HTTPHeaders({"ETag": '"e"', "Content-Length": str(len(BODY))}),
        URL_A,
    )
    other = [
        head(
            206,
            {
                "ETag": '"other"',
                "Content-Range": f"bytes 10-{len(BODY) - 1}/{len(BODY)}",
            },
        ),
        *chunks(BODY[10:]),
    ]
    transport = ScriptedTransport({URL_A: [other], URL_B: [[head(200), *chunks(BODY)]]})
    upstream = Upstream(live(tmp_path), transport)
    heard = Received()
    result = asyncio.run(upstream.resume(KEY, first_head, 10, A, heard.on_chunk))
    assert result.outcome is Outcome.FAILED
    assert heard.body == b""


# A download with two readers, in one process.


def make_download(
    tmp_path: Path, transport: ScriptedTransport, plan: FetchPlan | None = None
) -> tuple[Download, CacheStore]:
    settings = live(tmp_path)
    store = CacheStore(settings.current.cache)
    store.prepare()
    download = Download(
        KEY,
        store,
        Upstream(settings, transport),
        settings,
        on_begin=lambda _download: None,
        on_end=lambda _download: None,
        plan=plan or FetchPlan(route=Route((A, B), KEY.url_path)),
        keeping=Keeping(store, MetaStore(store.root), ManualClock()),
        hasher=Hasher(),
    )
    return download, store


def test_a_download_serves_two_readers_and_publishes_the_file(tmp_path):
    halfway = asyncio.Event()
    at = 3 * 16384
    answer = [*ok(BODY)[:4], Turn(), Gate(halfway), *chunks(BODY[at:])]
    transport = ScriptedTransport({URL_A: [[head(503)]], URL_B: [answer]})

    async def run() -> tuple[bytes, bytes, Download, CacheStore]:
        download, store = make_download(tmp_path, transport)
        download.start()
        assert await download.wait_for_head(5)
        first = MemoryOutput()
        early = ClientStream(first, download, 1 << 20)  # type: ignore[arg-type]
        first_done = asyncio.ensure_future(early.run())
        while download.delivered < at:
            await download.progress.wait()
        second = MemoryOutput()
        late = ClientStream(second, download, 1 << 20)  # type: ignore[arg-type]
        second_done = asyncio.ensure_future(late.run())
        halfway.set()
        assert await first_done and await second_done
        assert await download.wait_for_end(5)
        return bytes(first.body), bytes(second.body), download, store

    first, second, download, store = asyncio.run(run())
    assert first == BODY and second == BODY
    assert download.state is State.PUBLISHED and download.published
    assert download.result is not None and download.result.source == B
    cached = store.lookup(KEY)
    assert cached is not None and Path(cached.path).read_bytes() == BODY
    assert not list((Path(store.partial_dir)).iterdir())


def test_a_download_that_breaks_past_its_resumes_is_never_published(tmp_path):
    answer = [*ok(BODY)[:3], Turn(), CUT]
    transport = ScriptedTransport({URL_A: [answer]})

    async def run() -> tuple[bytes, bool, Download, CacheStore]:
        download, store = make_download(tmp_path, transport)
        download.start()
        assert await download.wait_for_head(5)
        output = MemoryOutput()
        reader = ClientStream(output, download, 1 << 20)  # type: ignore[arg-type]
        complete = await reader.run()
        await download.wait_for_end(5)
        return bytes(output.body), complete, download, store

    body, complete, download, store = asyncio.run(run())
    assert not complete
    assert body == BODY[: len(body)] and len(body) < len(BODY)
    assert download.state is State.FAILED and not download.published
    assert store.lookup(KEY) is None


def test_a_revalidation_answered_429_keeps_the_stored_copy(tmp_path):
    transport = ScriptedTransport(
        {URL_A: [[head(429, {"Retry-After": "60"})]], URL_B: [[head(429)]]}
    )
    plan = FetchPlan(
        route=Route((A, B), KEY.url_path),
        revalidating=Validators('"v1"', None, A, 0.0),
    )

    async def run() -> tuple[Download, CacheStore]:
        download, store = make_download(tmp_path, transport, plan)
        final = Path(store.final_path(KEY))
        final.parent.mkdir(parents=True)
        final.write_bytes(b"stored copy")
        download.start()
        await download.wait_for_end(5)
        return download, store

    download, store = asyncio.run(run())
    assert download.result is not None
    assert download.result.outcome is Outcome.FAILED
    assert download.result.client_status == 503
    assert Path(store.final_path(KEY)).read_bytes() == b"stored copy"


def test_scripted_errors_keep_their_kind(tmp_path):
    """The transport's error kinds reach the classification: a stall once
    the body started is a break, not a timeout of the source."""
    answer = [*ok(BODY)[:2], Fail(ErrorKind.TIMEOUT, "stalled")]
    result, _, _ = fetch(tmp_path, {URL_A: [answer]})
    assert result.outcome is Outcome.BROKEN
    assert "stalled" in result.detail
