"""SIGHUP: every setting a reload may change reaches the running daemon."""

from __future__ import annotations

import signal

import pytest

from tests.conftest import wait_until
from tests.origin import content

MIB = 1024 * 1024


def reload(proxy, **changes) -> None:
    """Rewrite the config with ``changes``, send SIGHUP, wait for the reload."""
    before = proxy.log().count("reloaded settings")
    proxy.settings = {**proxy.settings, **changes}
    proxy.write_config(**proxy.settings)
    proxy.send(signal.SIGHUP)
    assert wait_until(lambda: proxy.log().count("reloaded settings") > before)


def test_raising_max_file_size_by_reload_lets_big_files_through(origin, make_proxy):
    proxy = make_proxy(
        [origin.source("ok")], max_file_size="1MiB", client_buffer="64KiB"
    )
    size = 3 * MIB
    assert proxy.request(f"/files/{size}/early.tar").status == 502
    reload(proxy, max_file_size="8MiB")
    for mode, name in (("ok", "known.tar"), ("chunked", "unknown.tar")):
        proxy.settings["sources"] = [origin.source(mode)]
        reload(proxy)
        response = proxy.request(f"/files/{size}/{name}")
        assert response.status == 200, mode
        assert response.body == content(name, size), mode
        assert proxy.cached(f"/files/{size}/{name}").read_bytes() == response.body


@pytest.mark.smoke
def test_lowering_max_file_size_by_reload_refuses_the_next_big_file(origin, make_proxy):
    proxy = make_proxy([origin.source("chunked")])
    size = 3 * MIB
    assert proxy.request(f"/files/{size}/before.tar").body == content(
        "before.tar", size
    )
    reload(proxy, max_file_size="1MiB")
    response = proxy.open(f"/files/{size}/after.tar")
    try:
        body = response.read()
    except Exception:  # the body is cut: an unclean end, as for any failure
        body = b""
    assert len(body) < size
    assert not proxy.cached(f"/files/{size}/after.tar").exists()
    assert wait_until(lambda: "larger than max_file_size" in proxy.log())


def test_a_reload_that_sets_max_size_starts_evicting(origin, make_proxy):
    proxy = make_proxy([origin.source("ok")], cull_interval=1)
    paths = [f"/files/{MIB}/evict-{index}.tar" for index in range(4)]
    for path in paths:
        assert proxy.request(path).status == 200
    assert all(proxy.cached(path).exists() for path in paths)
    reload(proxy, max_size="2500KiB")

    def bounded() -> bool:
        return sum(proxy.cached(path).exists() for path in paths) <= 2

    assert wait_until(bounded, timeout=15)
    assert proxy.cached(paths[-1]).exists()


def test_a_reload_that_changes_a_restart_only_setting_says_so(origin, make_proxy):
    proxy = make_proxy([origin.source("ok")])
    reload(proxy, upstream_connections=7, idle_timeout=5)
    log = proxy.log()
    assert (
        "upstream_connections, idle_timeout changed in the file but need a restart"
        in log
    )
