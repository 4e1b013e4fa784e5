"""The pure response decisions: preconditions, Range, status and lengths."""

from __future__ import annotations

import ast
import re
import sys
from email.utils import formatdate
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tornado.httputil import HTTPHeaders

from pkgcache.serving import decisions
from pkgcache.serving.decisions import Answer, Representation, decide

ETAG = '"3039-6553f100"'
MODIFIED = 1_700_000_000
DATE = formatdate(MODIFIED, usegmt=True)  # "Tue, 14 Nov 2023 22:13:20 GMT"
EARLIER = formatdate(MODIFIED - 1, usegmt=True)
LATER = formatdate(MODIFIED + 1, usegmt=True)
FILE = Representation(size=12345, etag=ETAG, last_modified=MODIFIED)
BARE = Representation(size=12345, etag=None, last_modified=None)
STATUSES = {200, 206, 304, 412, 416}
NAMES = (
    "Range",
    "If-Range",
    "If-Match",
    "If-None-Match",
    "If-Modified-Since",
    "If-Unmodified-Since",
)


def get(headers: dict[str, str], representation: Representation = FILE) -> Answer:
    return decide("GET", headers, representation)


def whole(size: int, send_body: bool = True) -> Answer:
    return Answer(200, 0, size, (("Content-Length", str(size)),), send_body)


def partial(start: int, end: int, size: int = FILE.size) -> Answer:
    headers = (
        ("Content-Range", f"bytes {start}-{end - 1}/{size}"),
        ("Content-Length", str(end - start)),
    )
    return Answer(206, start, end, headers, True)


NOT_MODIFIED = Answer(304, 0, 0, (), False)
PRECONDITION_FAILED = Answer(412, 0, 0, (("Content-Length", "0"),), False)


def unsatisfiable(size: int = FILE.size) -> Answer:
    headers = (("Content-Range", f"bytes */{size}"), ("Content-Length", "0"))
    return Answer(416, 0, 0, headers, False)


# The plain request and its lengths (RFC 9110 sections 8.6 and 9.3.2).


def test_plain_get_sends_the_whole_file_with_its_length() -> None:
    assert get({}) == whole(FILE.size)


def test_plain_get_through_tornado_headers_sends_the_whole_file() -> None:
    headers = HTTPHeaders({"Host": "example.org", "Accept": "*/*"})
    assert decide("GET", headers, FILE) == whole(FILE.size)


def test_head_has_the_length_but_no_body() -> None:
    assert decide("HEAD", {}, FILE) == whole(FILE.size, send_body=False)


def test_unknown_length_sends_to_the_end_without_content_length() -> None:
    growing = Representation(size=None, etag=ETAG, last_modified=MODIFIED)
    assert get({}, growing) == Answer(200, 0, None, (), True)
    assert decide("HEAD", {}, growing) == Answer(200, 0, None, (), False)


def test_empty_file_has_content_length_zero() -> None:
    empty = Representation(size=0, etag=ETAG, last_modified=MODIFIED)
    assert get({}, empty) == whole(0)


# If-Match (RFC 9110 section 13.1.1).


@pytest.mark.parametrize(
    "field", [ETAG, f'"other", {ETAG}', f'"a,b" ,{ETAG}', "*", " * "]
)
def test_if_match_with_our_tag_or_star_passes(field: str) -> None:
    assert get({"If-Match": field}) == whole(FILE.size)


@pytest.mark.parametrize("field", ['"other"', f"W/{ETAG}", "", "garbage", '"a", *'])
def test_if_match_without_a_strong_match_fails_with_412(field: str) -> None:
    assert get({"If-Match": field}) == PRECONDITION_FAILED


def test_if_match_never_matches_a_file_without_etag_except_by_star() -> None:
    assert get({"If-Match": ETAG}, BARE) == PRECONDITION_FAILED
    assert get({"If-Match": "*"}, BARE) == whole(BARE.size)


def test_if_match_never_matches_a_weak_etag_of_ours() -> None:
    weak = Representation(size=10, etag=f"W/{ETAG}", last_modified=None)
    assert get({"If-Match": f"W/{ETAG}"}, weak) == PRECONDITION_FAILED


def test_failed_if_match_is_412_even_for_head() -> None:
    assert decide("HEAD", {"If-Match": '"other"'}, FILE) == PRECONDITION_FAILED


def test_if_match_makes_if_unmodified_since_ignored() -> None:
    headers = {"If-Match": ETAG, "If-Unmodified-Since": EARLIER}
    assert get(headers) == whole(FILE.size)


# If-Unmodified-Since (RFC 9110 section 13.1.4).


def test_file_modified_after_if_unmodified_since_fails_with_412() -> None:
    assert get({"If-Unmodified-Since": EARLIER}) == PRECONDITION_FAILED


@pytest.mark.parametrize("date", [DATE, LATER])
def test_file_unmodified_since_the_date_is_sent(date: str) -> None:
    assert get({"If-Unmodified-Since": date}) == whole(FILE.size)


@pytest.mark.parametrize(
    "field", ["yesterday", "", f"{EARLIER}, {EARLIER}", "Tue, 14 Nov 2023 25:00:00 GMT"]
)
def test_invalid_if_unmodified_since_is_ignored(field: str) -> None:
    assert get({"If-Unmodified-Since": field}) == whole(FILE.size)


def test_if_unmodified_since_is_ignored_without_last_modified() -> None:
    assert get({"If-Unmodified-Since": EARLIER}, BARE) == whole(BARE.size)


# If-None-Match (RFC 9110 section 13.1.2).


@pytest.mark.parametrize(
    "field", [ETAG, f"W/{ETAG}", f'"x", W/"y" , {ETAG}', "*", f'"a,b",{ETAG}']
)
def test_if_none_match_with_our_tag_is_not_modified(field: str) -> None:
    assert get({"If-None-Match": field}) == NOT_MODIFIED


def test_if_none_match_compares_weakly_with_a_weak_etag_of_ours() -> None:
    weak = Representation(size=10, etag=f"W/{ETAG}", last_modified=None)
    assert get({"If-None-Match": ETAG}, weak) == NOT_MODIFIED


@pytest.mark.parametrize("field", ['"other"', "", "garbage", ETAG[1:-1]])
def test_if_none_match_without_our_tag_sends_the_file(field: str) -> None:
    assert get({"If-None-Match": field}) == whole(FILE.size)


def test_if_none_match_star_is_not_modified_even_without_etag() -> None:
    assert get({"If-None-Match": "*"}, BARE) == NOT_MODIFIED
    assert get({"If-None-Match": ETAG}, BARE) == whole(BARE.size)


def test_head_with_matching_if_none_match_is_not_modified() -> None:
    assert decide("HEAD", {"If-None-Match": ETAG}, FILE) == NOT_MODIFIED


def test_if_none_match_makes_if_modified_since_ignored() -> None:
    headers = {"If-None-Match": '"other"', "If-Modified-Since": LATER}
    assert get(headers) == whole(FILE.size)


def test_failed_if_match_wins_over_matching_if_none_match() -> None:
    headers = {"If-Match": '"other"', "If-None-Match": ETAG}
    assert get(headers) == PRECONDITION_FAILED


def test_failed_if_unmodified_since_wins_over_if_modified_since() -> None:
    headers = {"If-Unmodified-Since": EARLIER, "If-Modified-Since": LATER}
    assert get(headers) == PRECONDITION_FAILED


# If-Modified-Since (RFC 9110 section 13.1.3) and HTTP-dates (section 5.6.7).


@pytest.mark.parametrize(
    "date",
    [
        DATE,
        LATER,
        "Tuesday, 14-Nov-23 22:13:20 GMT",
        "Tue Nov 14 22:13:20 2023",
        "Tue, 14 Nov 2023 22:13:20",
        "Tue, 14 Nov 2023 23:13:20 +0100",
    ],
)
def test_file_not_modified_since_the_date_is_not_modified(date: str) -> None:
    assert get({"If-Modified-Since": date}) == NOT_MODIFIED


def test_file_modified_since_the_date_is_sent() -> None:
    assert get({"If-Modified-Since": EARLIER}) == whole(FILE.size)


@pytest.mark.parametrize(
    "field",
    [
        "yesterday",
        "",
        "1700000000",
        f"{DATE}, {DATE}",
        f"{DATE},Tue Nov 14 22:13:20 2023",
        "14 Nov 2023 22:13:20 GMT",
        f"{DATE}{' ' * 40}x",
        "Tue, 14 Nov 99999 22:13:20 GMT",
        "Tue, 14 Nov 2023 22:13:20 +9999",
        "Tue, 99999999999999999999 Nov 2023 22:13:20 GMT",
    ],
)
def test_invalid_if_modified_since_is_ignored(field: str) -> None:
    assert get({"If-Modified-Since": field}) == whole(FILE.size)


def test_if_modified_since_is_ignored_without_last_modified() -> None:
    assert get({"If-Modified-Since": LATER}, BARE) == whole(BARE.size)


def test_not_modified_wins_over_range() -> None:
    assert get({"If-None-Match": ETAG, "Range": "bytes=0-9"}) == NOT_MODIFIED
    assert get({"If-Modified-Since": DATE, "Range": "bytes=0-9"}) == NOT_MODIFIED


# Range (RFC 9110 sections 14.1.2 and 14.2), Content-Range (section 14.4).


@pytest.mark.parametrize(
    ("field", "start", "end"),
    [
        ("bytes=0-99", 0, 100),
        ("bytes=100-199", 100, 200),
        ("bytes=12344-12344", 12344, 12345),
        ("bytes=100-", 100, 12345),
        ("bytes=100-999999", 100, 12345),
        ("bytes=100-18446744073709551615", 100, 12345),
        ("bytes=-100", 12245, 12345),
        ("BYTES=0-99", 0, 100),
        (" bytes = 0 - 99 ", 0, 100),
        ("bytes=\t5-\t6", 5, 7),
        ("bytes=000100-000199", 100, 200),
    ],
)
def test_satisfiable_range_is_partial_content(field: str, start: int, end: int) -> None:
    assert get({"Range": field}) == partial(start, end)


@pytest.mark.parametrize(
    "field",
    ["bytes=0-", "bytes=0-12344", "bytes=0-99999", "bytes=-12345", "bytes=-99999"],
)
def test_range_covering_the_whole_file_is_a_plain_200(field: str) -> None:
    assert get({"Range": field}) == whole(FILE.size)


@pytest.mark.parametrize(
    "field",
    ["bytes=12345-", "bytes=12345-12400", "bytes=-0", "bytes=99999999999999999999-"],
)
def test_unsatisfiable_range_is_416_with_the_length(field: str) -> None:
    assert get({"Range": field}) == unsatisfiable()


@pytest.mark.parametrize(
    "field",
    [
        "bytes=0-9,20-29",
        "bytes=0-9,",
        "bytes=-",
        "bytes=",
        "bytes=9-0",
        "bytes=a-9",
        "bytes=0x10-",
        "bytes=1.5-2",
        "bytes=--5",
        "bytes 0-9",
        "bytes:0-9",
        "items=0-9",
        "0-9",
        "",
        "bytes=\u0661-\u0662",
        "byte\u017f=0-9",
        f"bytes=0-{'9' * 40}",
        f"bytes={'1' * 5000}-",
    ],
)
def test_invalid_or_multiple_ranges_are_ignored(field: str) -> None:
    assert get({"Range": field}) == whole(FILE.size)


def test_range_is_ignored_on_head() -> None:
    answer = decide("HEAD", {"Range": "bytes=0-9"}, FILE)
    assert answer == whole(FILE.size, send_body=False)


def test_range_on_a_download_of_unknown_length_sends_it_whole() -> None:
    growing = Representation(size=None, etag=ETAG, last_modified=MODIFIED)
    assert get({"Range": "bytes=100-"}, growing) == Answer(200, 0, None, (), True)


def test_range_of_an_empty_file_from_a_position_is_416() -> None:
    empty = Representation(size=0, etag=ETAG, last_modified=MODIFIED)
    assert get({"Range": "bytes=0-"}, empty) == unsatisfiable(0)
    assert get({"Range": "bytes=0-0"}, empty) == unsatisfiable(0)
    assert get({"Range": "bytes=-0"}, empty) == unsatisfiable(0)


def test_suffix_range_of_an_empty_file_is_the_whole_empty_file() -> None:
    # RFC 9110 section 14.1.2: the only satisfiable range of an empty file.
    empty = Representation(size=0, etag=ETAG, last_modified=MODIFIED)
    assert get({"Range": "bytes=-5"}, empty) == whole(0)


def test_tornado_headers_find_range_names_in_any_case() -> None:
    headers = HTTPHeaders()
    headers.add("range", "bytes=10-19")
    headers.add("IF-RANGE", ETAG)
    assert decide("GET", headers, FILE) == partial(10, 20)
    headers = HTTPHeaders()
    headers.add("if-none-match", ETAG)
    assert decide("GET", headers, FILE) == NOT_MODIFIED
    headers = HTTPHeaders()
    headers.add("if-match", '"other"')
    assert decide("GET", headers, FILE) == PRECONDITION_FAILED
    headers = HTTPHeaders()
    headers.add("IF-MODIFIED-SINCE", DATE)
    assert decide("GET", headers, FILE) == NOT_MODIFIED
    headers = HTTPHeaders()
    headers.add("if-unmodified-since", EARLIER)
    assert decide("GET", headers, FILE) == PRECONDITION_FAILED


def test_repeated_range_headers_joined_by_tornado_are_ignored() -> None:
    headers = HTTPHeaders()
    headers.add("Range", "bytes=0-9")
    headers.add("Range", "bytes=20-29")
    assert decide("GET", headers, FILE) == whole(FILE.size)


def test_repeated_if_modified_since_joined_by_tornado_is_ignored() -> None:
    headers = HTTPHeaders()
    headers.add("If-Modified-Since", DATE)
    headers.add("If-Modified-Since", DATE)
    assert decide("GET", headers, FILE) == whole(FILE.size)


# If-Range (RFC 9110 section 13.1.5).


@pytest.mark.parametrize("field", [ETAG, f" {ETAG} ", DATE])
def test_current_if_range_gets_the_range(field: str) -> None:
    assert get({"Range": "bytes=10-19", "If-Range": field}) == partial(10, 20)


@pytest.mark.parametrize(
    "field",
    ['"other"', f"W/{ETAG}", f"{ETAG}, {ETAG}", EARLIER, LATER, "soon", "", "W/x"],
)
def test_stale_if_range_gets_the_whole_file(field: str) -> None:
    assert get({"Range": "bytes=10-19", "If-Range": field}) == whole(FILE.size)


def test_if_range_without_a_validator_to_compare_gets_the_whole_file() -> None:
    assert get({"Range": "bytes=10-19", "If-Range": ETAG}, BARE) == whole(BARE.size)
    assert get({"Range": "bytes=10-19", "If-Range": DATE}, BARE) == whole(BARE.size)


def test_stale_if_range_wins_over_an_unsatisfiable_range() -> None:
    headers = {"Range": "bytes=99999-", "If-Range": '"other"'}
    assert get(headers) == whole(FILE.size)


def test_if_range_without_range_changes_nothing() -> None:
    assert get({"If-Range": '"other"'}) == whole(FILE.size)


# The module's contract.


def test_decisions_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(decisions.__file__).read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= sys.stdlib_module_names | {"__future__"}


# Properties.

representations = st.builds(
    Representation,
    size=st.none() | st.integers(0, 10**12),
    etag=st.none() | st.sampled_from([ETAG, f"W/{ETAG}", '""', '"a,b"']),
    last_modified=st.none() | st.integers(-(10**10), 10**11),
)
header_values = st.text(max_size=80) | st.sampled_from(
    [ETAG, f"W/{ETAG}", "*", DATE, "bytes=0-", "bytes=-1", "bytes=5-2", ""]
)


@settings(max_examples=500, deadline=None)
@given(
    method=st.sampled_from(["GET", "HEAD"]),
    headers=st.dictionaries(st.sampled_from(NAMES), header_values),
    representation=representations,
)
@example(method="GET", headers={"Range": "bytes=0-0"}, representation=BARE)
def test_any_header_values_give_one_of_five_consistent_answers(
    method: str, headers: dict[str, str], representation: Representation
) -> None:
    answer = decide(method, headers, representation)
    assert answer.status in STATUSES
    if answer.status == 206:
        assert method == "GET"
        assert representation.size is not None
    if answer.status in (200, 206):
        assert answer.send_body == (method == "GET")
    else:
        assert not answer.send_body
    assert dict(answer.headers).keys() <= {"Content-Length", "Content-Range"}


@settings(max_examples=500, deadline=None)
@given(
    size=st.integers(0, 10**15),
    first=st.none() | st.integers(0, 10**16),
    last=st.none() | st.integers(0, 10**16),
    if_range=st.none() | st.sampled_from([ETAG, DATE]),
)
def test_any_partial_answer_is_inside_the_file_and_says_so(
    size: int, first: int | None, last: int | None, if_range: str | None
) -> None:
    spec = f"{'' if first is None else first}-{'' if last is None else last}"
    headers = {"Range": f"bytes={spec}"}
    if if_range is not None:
        headers["If-Range"] = if_range
    representation = Representation(size=size, etag=ETAG, last_modified=MODIFIED)
    answer = decide("GET", headers, representation)
    assert answer.status in (200, 206, 416)
    fields = dict(answer.headers)
    if answer.status == 206:
        assert 0 <= answer.start < answer.end <= size
        assert answer.end - answer.start < size
        assert fields["Content-Length"] == str(answer.end - answer.start)
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", fields["Content-Range"])
        assert match is not None
        assert tuple(map(int, match.groups())) == (answer.start, answer.end - 1, size)
    elif answer.status == 416:
        assert fields == {"Content-Range": f"bytes */{size}", "Content-Length": "0"}
    else:
        assert (answer.start, answer.end) == (0, size)
        assert fields == {"Content-Length": str(size)}


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=64),
    first=st.none() | st.integers(0, 80),
    last=st.none() | st.integers(0, 80),
)
def test_the_bytes_sent_are_the_bytes_asked_for(
    data: bytes, first: int | None, last: int | None
) -> None:
    spec = f"{'' if first is None else first}-{'' if last is None else last}"
    representation = Representation(size=len(data), etag=None, last_modified=None)
    answer = decide("GET", {"Range": f"bytes={spec}"}, representation)
    sent = data[answer.start : answer.end]
    if first is None and last is None:
        assert answer.status == 200
    elif first is None:
        assert last is not None
        assert answer.status == 416 if last == 0 else sent == data[-last:]
    elif last is not None and last < first:
        assert answer.status == 200 and sent == data
    elif first >= len(data):
        assert answer.status == 416
    else:
        assert sent == data[first : None if last is None else last + 1]


@settings(max_examples=300, deadline=None)
@given(moment=st.integers(0, 253402300799), usegmt=st.booleans())
def test_a_file_is_not_modified_exactly_until_its_last_second(
    moment: int, usegmt: bool
) -> None:
    date = formatdate(moment, usegmt=usegmt)
    same = Representation(size=1, etag=None, last_modified=moment)
    newer = Representation(size=1, etag=None, last_modified=moment + 1)
    assert get({"If-Modified-Since": date}, same) == NOT_MODIFIED
    assert get({"If-Modified-Since": date}, newer) == whole(1)
    assert get({"If-Unmodified-Since": date}, same) == whole(1)
    assert get({"If-Unmodified-Since": date}, newer) == PRECONDITION_FAILED
