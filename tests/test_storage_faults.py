"""When the cache cannot store a file (full, read-only, or the file can
never fit), clients still get it whole, nothing is stored, and the log
says so once."""

from __future__ import annotations

import shutil
import subprocess

from tests.conftest import wait_until
from tests.origin import content

MIB = 1024 * 1024


def make_unwritable(proxy) -> None:
    """New partial files cannot be created: the folder is now a file."""
    partial = proxy.cache / ".partial"
    shutil.rmtree(partial)
    partial.write_text("not a folder")


def test_an_unwritable_cache_serves_misses_through(origin, make_proxy):
    proxy = make_proxy([origin.source("ok")])
    make_unwritable(proxy)
    for name, size in (("a.tar", 5000), ("b.tar", 70_000), ("c.tar", 6 * MIB)):
        path = f"/files/{size}/{name}"
        response = proxy.request(path)
        assert response.status == 200, name
        assert response.body == content(name, size), name
        assert not proxy.cached(path).exists()
    assert proxy.log().count("serving downloads through without storing") == 1


def test_a_full_disk_serves_small_misses_that_ended_before_the_client(
    origin, make_proxy
):
    # RLIMIT_FSIZE: no file may grow past 4000 bytes, the log file neither,
    # so it logs warnings only.
    proxy = make_proxy([origin.source("ok")], fsize_limit=4000, verbose=1)
    for index, size in enumerate((20_000, 30_000, 1_000_000)):
        path = f"/files/{size}/full-{index}.tar"
        response = proxy.request(path)
        assert response.status == 200
        assert response.body == content(f"full-{index}.tar", size)
        assert not proxy.cached(path).exists()
    assert wait_until(lambda: proxy.partials() == [])
    assert proxy.log().count("serving downloads through without storing") == 1
    assert proxy.request("/files/500/fits.tar").status == 200
    assert proxy.cached("/files/500/fits.tar").exists()


def test_a_file_larger_than_max_size_is_served_and_costs_the_cache_nothing(
    origin, make_proxy
):
    proxy = make_proxy([origin.source("ok")], max_size="12MiB")
    small = [f"/files/{MIB}/keep-{index}.tar" for index in range(10)]
    for path in small:
        assert proxy.request(path).status == 200
    for mode, name in (("ok", "huge.tar"), ("chunked", "huge-unknown.tar")):
        proxy_path = f"/files/{20 * MIB}/{name}"
        proxy.settings["sources"] = [origin.source(mode)]
        done = subprocess.run(
            ["curl", "-sS", "-o", "-", proxy.url + proxy_path], capture_output=True
        )
        assert done.returncode == 0, mode
        assert done.stdout == content(name, 20 * MIB), mode
        assert not proxy.cached(proxy_path).exists(), mode
        assert all(proxy.cached(path).exists() for path in small), mode
        if mode == "ok":
            # the second round asks the chunked mode: a length known only
            # at the end
            proxy.write_config(**proxy.settings)
            proxy.send(__import__("signal").SIGHUP)
            assert wait_until(lambda: "reloaded settings" in proxy.log())
    assert "larger than max_size; served, not stored" in proxy.log()
