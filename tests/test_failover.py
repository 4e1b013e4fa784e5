"""Sources tried in order; what clients get when none has the file."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.origin import content


@pytest.fixture
def silent_source() -> Iterator[str]:
    """A source that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("first", ["e404", "e500", "closed"])
def test_failing_first_source_moves_on_to_the_next(origin, make_proxy, first):
    closed = f"http://127.0.0.1:{free_port()}"
    source = closed if first == "closed" else origin.source(first)
    proxy = make_proxy([source, origin.source("ok")])
    path = f"/files/2000/failover-{first}.tar"
    response = proxy.request(path)
    assert response.status == 200
    assert response.body == content(f"failover-{first}.tar", 2000)
    assert proxy.cached(path).read_bytes() == response.body


def test_every_source_not_found_is_404_and_nothing_is_stored(origin, make_proxy):
    proxy = make_proxy([origin.source("e404"), origin.source("e404")])
    path = "/files/100/missing.tar"
    response = proxy.request(path)
    assert response.status == 404
    assert b"error page" not in response.body
    assert not proxy.cached(path).exists()
    assert proxy.partials() == []


def test_server_errors_give_502_and_the_error_body_is_never_served(origin, make_proxy):
    proxy = make_proxy([origin.source("e404"), origin.source("e500")])
    path = "/files/100/broken.tar"
    response = proxy.request(path)
    assert response.status == 502
    assert b"error page" not in response.body
    assert not proxy.cached(path).exists()


def test_timeout_of_the_last_source_gives_504(origin, make_proxy, silent_source):
    proxy = make_proxy([origin.source("e500"), silent_source], stall_timeout=1)
    response = proxy.request("/files/100/slowpoke.tar")
    assert response.status == 504


def test_redirects_are_followed(origin, make_proxy):
    proxy = make_proxy([origin.source("redirect")])
    path = "/files/1234/moved.tar"
    response = proxy.request(path)
    assert response.status == 200
    assert response.body == content("moved.tar", 1234)
    assert origin.count("ok", 1234, "moved.tar") == 1


def test_redirect_to_a_folder_is_not_stored(origin, make_proxy):
    proxy = make_proxy([origin.source("dirredirect")])
    path = "/files/10/distfiles"
    response = proxy.request(path)
    assert response.status == 404
    assert not proxy.cached(path).exists()
    assert proxy.request("/files/10/distfiles/a.tar").status == 200


def test_a_folder_path_is_404_and_never_fetched(origin, proxy):
    assert proxy.request("/files/10/distfiles/").status == 404
    assert origin.log == []
