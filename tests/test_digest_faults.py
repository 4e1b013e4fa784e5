"""Digests under attack or at scale: a sender's own digest header never
outranks the digest of the path or the index; a hostile or huge index
costs neither memory nor IOLoop time; a PyPI page vouches only for its
own project's files; a page whose digests could not be learnt is learnt
again. Real origins and the real proxy process, except one in-process
test of the page learner with a read that fails."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import http.client
import io
import logging
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pkgcache.digests.book import DigestBook
from pkgcache.registries import pypi
from pkgcache.store.paths import CacheKey
from tests.conftest import wait_until
from tests.pypirepo import Link, PypiRepo, serve
from tests.test_digests import (
    BAD,
    GOOD,
    DigestOrigin,
    corrupted,
    meta,
    mirror_of,
    mismatches,
    nothing_stored,
    repr_digest,
)

GOOD_SHA512 = hashlib.sha512(GOOD).hexdigest()
BINARY = "dists/stable/main/binary-amd64"


@pytest.fixture
def digest_origin() -> Iterator[DigestOrigin]:
    served = DigestOrigin().start()
    yield served
    served.stop()


def refused(proxy: Any, path: str) -> None:
    """The client never gets the whole body with a clean end."""
    try:
        answer = proxy.request(path)
    except (http.client.HTTPException, ConnectionError):
        return
    assert answer.status != 200 or answer.body != BAD, answer.status


def debian(source: str) -> dict[str, Any]:
    return {
        "name": "debian",
        "prefix": "/debian/",
        "kind": "debian",
        "sources": [source],
    }


# A response's own digest header --------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        ("Repr-Digest", repr_digest(BAD)),
        ("X-Checksum-Sha256", hashlib.sha256(BAD).hexdigest()),
    ],
    ids=["repr-digest", "x-checksum-sha256"],
)
def test_a_sha256_header_of_the_bytes_sent_does_not_outrank_the_sha512_in_the_path(
    digest_origin: DigestOrigin, make_proxy: Any, header: tuple[str, str]
) -> None:
    path = f"{BINARY}/by-hash/SHA512/{GOOD_SHA512}"
    digest_origin.files[path] = (BAD, dict([header]))
    proxy = make_proxy([digest_origin.url])

    refused(proxy, "/" + path)
    nothing_stored(proxy, "/" + path)
    (line,) = mismatches(proxy)
    assert f"expected sha512:{GOOD_SHA512} (path)" in line


def test_an_index_digest_is_checked_beside_the_headers_and_recorded_over_them(
    digest_origin: DigestOrigin, make_proxy: Any
) -> None:
    """The Packages names the pool file's SHA-512 only; the file's sender
    gives a SHA-256 of what it sends."""
    pool = "pool/main/a/a_1_all.deb"
    packages = f"Package: a\nFilename: {pool}\nSHA512: {GOOD_SHA512}\n\n".encode()
    digest_origin.files[f"{BINARY}/Packages"] = (packages, {})
    digest_origin.files[pool] = (
        BAD,
        {"X-Checksum-Sha256": hashlib.sha256(BAD).hexdigest()},
    )
    proxy = make_proxy([], repository=[debian(digest_origin.url)])
    assert proxy.request(f"/debian/{BINARY}/Packages").status == 200
    assert wait_until(lambda: "names the digests of 1 files" in proxy.log())

    refused(proxy, f"/debian/{pool}")
    nothing_stored(proxy, f"/debian/{pool}")
    assert f"expected sha512:{GOOD_SHA512} (index)" in mismatches(proxy)[-1]

    # The good bytes with a wrong header: the header's check refuses too.
    digest_origin.files[pool] = (GOOD, {"Repr-Digest": repr_digest(BAD)})
    refused(proxy, f"/debian/{pool}")
    nothing_stored(proxy, f"/debian/{pool}")
    good_sha256 = hashlib.sha256(GOOD).hexdigest()
    assert f"(header), got sha256:{good_sha256}" in mismatches(proxy)[-1]

    # Both right: stored, and the record names the index's digest.
    digest_origin.files[pool] = (GOOD, {"Repr-Digest": repr_digest(GOOD)})
    answer = proxy.request(f"/debian/{pool}")
    assert answer.status == 200 and answer.body == GOOD
    assert meta(proxy, f"/debian/{pool}")["verified"] == f"sha512:{GOOD_SHA512}"
    assert wait_until(lambda: " miss verified=sha512 " in proxy.log())


# Big and hostile indexes ---------------------------------------------------


@pytest.mark.serial
def test_a_small_packages_gz_unpacking_to_a_huge_index_costs_no_memory(
    tmp_path: Path, make_proxy: Any
) -> None:
    """15 KiB on the wire, 16 MiB of tiny stanzas unpacked: the proxy's
    peak RSS grows by less than 64 MiB while it reads it (it grew by
    about 260 MiB when the whole text was split into stanzas)."""
    stanza = f"Package: a\nFilename: pool/a.deb\nSHA256: {'ab' * 32}\n\n".encode()
    bomb = gzip.compress(stanza * (16 * 1024 * 1024 // len(stanza)), 9)
    assert len(bomb) < 64 * 1024
    mirror = mirror_of(tmp_path / "mirror", {f"{BINARY}/Packages.gz": bomb})
    try:
        proxy = make_proxy([], repository=[debian(mirror.url)])
        assert proxy.request("/.pkgcache/health").status == 200
        before = proxy.rss_peak_kib()
        assert proxy.request(f"/debian/{BINARY}/Packages.gz").body == bomb
        assert wait_until(lambda: "Packages.gz names the digests of" in proxy.log())
        assert proxy.request("/.pkgcache/health").status == 200
        grown = proxy.rss_peak_kib() - before
        assert grown < 64 * 1024, f"peak RSS grew by {grown} KiB"
    finally:
        mirror.stop()


@pytest.mark.serial
def test_health_answers_within_100_ms_while_a_400k_file_index_is_read(
    tmp_path: Path, make_proxy: Any
) -> None:
    """The index is parsed, hashed and packed in a thread, and swapped in
    by the IOLoop in one step (it took the loop a second in one callback)."""
    files = 400_000
    text = b"".join(
        b"Package: p%d\nFilename: pool/p%d.deb\nSHA256: %s\n\n"
        % (n, n, hashlib.sha256(b"%d" % n).hexdigest().encode())
        for n in range(files)
    )
    last = f"pool/p{files - 1}.deb"
    mirror = mirror_of(
        tmp_path / "mirror",
        {f"{BINARY}/Packages.gz": gzip.compress(text, 1), last: BAD},
    )
    try:
        proxy = make_proxy([], repository=[debian(mirror.url)])
        #: (when asked, seconds until answered) of each health request.
        latencies: list[tuple[float, float]] = []
        statuses: set[int] = set()
        done = threading.Event()

        def ask_health() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", proxy.port)
            while not done.is_set():
                started = time.monotonic()
                connection.request("GET", "/.pkgcache/health")
                response = connection.getresponse()
                response.read()
                latencies.append((started, time.monotonic() - started))
                statuses.add(response.status)
            connection.close()

        asker = threading.Thread(target=ask_health)
        asker.start()
        try:
            assert proxy.request(f"/debian/{BINARY}/Packages.gz").status == 200
            downloaded = time.monotonic()
            indexed = f"names the digests of {files} files"
            assert wait_until(lambda: indexed in proxy.log(), timeout=60)
            # The last file named is checked: the whole table is in.
            refused(proxy, f"/debian/{last}")
            nothing_stored(proxy, f"/debian/{last}")
        finally:
            done.set()
            asker.join()
        # From the end of the index's download to its last entry's use.
        while_indexing = [took for asked, took in latencies if asked >= downloaded]
        assert statuses == {200}
        assert len(while_indexing) > 10
        assert max(while_indexing) < 0.1, sorted(while_indexing)[-5:]
    finally:
        mirror.stop()


@pytest.mark.serial
def test_an_arch_database_is_read_member_by_member(
    digest_origin: DigestOrigin, make_proxy: Any
) -> None:
    """A ``core.db`` of 2000 packages and 64 MiB of other members, under
    300 KiB gzipped: the proxy's peak RSS grows by less than 64 MiB while
    it reads it, and its ``%SHA256SUM%`` refuses a corrupt package."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz", compresslevel=9) as db:
        for n in range(2000):
            digest = hashlib.sha256(GOOD if n == 7 else b"%d" % n).hexdigest()
            desc = f"%FILENAME%\np{n}-1-1-any.pkg.tar.zst\n\n%SHA256SUM%\n{digest}\n"
            member = tarfile.TarInfo(f"p{n}-1-1/desc")
            member.size = len(desc)
            db.addfile(member, io.BytesIO(desc.encode()))
        padding = tarfile.TarInfo("padding/files")
        padding.size = 512
        for _ in range(64 * 1024):
            db.addfile(padding, io.BytesIO(bytes(512)))
    assert len(archive.getvalue()) < 300 * 1024
    folder = "core/os/x86_64"
    digest_origin.files[f"{folder}/core.db"] = (archive.getvalue(), {})
    digest_origin.files[f"{folder}/p7-1-1-any.pkg.tar.zst"] = (BAD, {})
    repository = {
        "name": "arch",
        "prefix": "/arch/",
        "kind": "arch",
        "sources": [digest_origin.url],
    }
    proxy = make_proxy([], repository=[repository])
    assert proxy.request("/.pkgcache/health").status == 200
    before = proxy.rss_peak_kib()
    assert proxy.request(f"/arch/{folder}/core.db").status == 200
    assert wait_until(lambda: "core.db names the digests of 2000 files" in proxy.log())
    grown = proxy.rss_peak_kib() - before
    assert grown < 64 * 1024, f"peak RSS grew by {grown} KiB"

    package = f"/arch/{folder}/p7-1-1-any.pkg.tar.zst"
    refused(proxy, package)
    nothing_stored(proxy, package)
    good_sha256 = hashlib.sha256(GOOD).hexdigest()
    assert f"expected sha256:{good_sha256} (index)" in mismatches(proxy)[-1]


# PyPI pages ------------------------------------------------------------------


def test_a_project_page_cannot_vouch_for_another_projects_file(
    make_proxy: Any, tmp_path: Path
) -> None:
    """A hostile index's page of ``evil`` names ``alpha``'s wheel with the
    digest of a corrupt copy: the wheel is still checked against alpha's
    own page, and the corrupt copy is refused."""
    repo = PypiRepo.build(tmp_path / "pypi", {"alpha": [], "evil": []})
    alpha = next(d for d in repo.dists("alpha") if d.is_wheel)
    wheel_file = repo.files / alpha.path
    bad = corrupted(wheel_file.read_bytes())
    wheel_file.write_bytes(bad)
    with serve(repo) as (index, files):
        url = f"{files.url}/{alpha.path}"
        bad_sha256 = hashlib.sha256(bad).hexdigest()
        repo.add_link("evil", Link(alpha.filename, url, bad_sha256, len(bad)))
        repository = {
            "name": "pypi",
            "prefix": "/pypi/",
            "kind": "pypi",
            "sources": [index.url],
            "file_sources": [files.url],
        }
        proxy = make_proxy([], repository=[repository])
        for project in ("alpha", "evil"):
            page = proxy.request(
                f"/pypi/simple/{project}/", headers={"Accept": "text/html"}
            )
            assert page.status == 200
            assert alpha.filename.encode() in page.body

        with pytest.raises(http.client.HTTPException):
            proxy.request("/pypi/" + alpha.path)
        nothing_stored(proxy, "/pypi/" + alpha.path)
        assert f"expected sha256:{alpha.sha256} (index)" in mismatches(proxy)[-1]


@pytest.mark.parametrize(
    ("project", "filename", "own"),
    [
        ("foo-bar", "foo_bar-1.0-py3-none-any.whl", True),
        ("foo-bar", "Foo.Bar-1.0-py3-none-any.whl.metadata", True),
        ("foo", "foo_bar-1.0-py3-none-any.whl", False),
        ("foo-bar", "foo-bar-1.0.tar.gz", True),
        ("foo", "foo-bar-1.0.tar.gz", False),
        ("foo", "foo-1.0.zip", True),
        ("foo", "bar-1.0.tar.gz", False),
        ("foo", "foo.tar.gz", False),
    ],
)
def test_a_file_belongs_to_the_project_its_name_says(
    project: str, filename: str, own: bool
) -> None:
    assert pypi.belongs(project, filename) is own


def test_a_page_whose_digests_could_not_be_read_is_logged_and_read_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    book = DigestBook()
    pages = pypi.PageDigests(book)
    digest = hashlib.sha256(GOOD).hexdigest()
    page = (
        f'<a href="/pypi/packages/x/alpha-1.0-py3-none-any.whl#sha256={digest}">'
        "alpha-1.0-py3-none-any.whl</a>"
    ).encode()
    reads: list[str] = []

    def read() -> bytes:
        reads.append("read")
        if len(reads) == 1:
            raise OSError("the page shrank while read")
        return page

    async def learn_thrice() -> None:
        for _ in range(3):
            running = pages.learn("alpha", "/pypi/", read, "identity")
            if running is not None:
                await asyncio.wait([running])  # its done callback ran first

    with caplog.at_level(logging.WARNING, logger="pkgcache.registries"):
        asyncio.run(learn_thrice())
    assert reads == ["read", "read"]  # the third time it was known
    failures = [r for r in caplog.records if "cannot learn" in r.getMessage()]
    assert len(failures) == 1 and "shrank" in failures[0].getMessage()
    key = CacheKey(("pypi", "packages", "x", "alpha-1.0-py3-none-any.whl"))
    assert [d.value for d in book.get(key)] == [bytes.fromhex(digest)]
