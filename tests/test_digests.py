"""Every download checked against a digest before it becomes a hit: from
its path (apt ``by-hash``), its repository's index (PyPI ``#sha256=``,
apt ``Packages``) or the upstream's ``Repr-Digest``; real origins and real
clients (curl, pip, apt-get), and ``package-cache verify`` on a cache
corrupted on disk."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import http.client
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.web

from tests.aptrepo import AptClient, AptRepo, CommandFailed
from tests.conftest import ROOT, wait_until
from tests.loopback import LoopbackServer
from tests.npmregistry import CommandFailed as NpmFailed
from tests.npmregistry import NpmClient, NpmRegistry, missing_tools, pack
from tests.pypirepo import PypiRepo, pip, serve
from tests.static_origin import StaticOrigin

GOOD = bytes(range(256)) * 64 + b"the good index\n"
#: The same length, other bytes: a corrupt mirror's copy.
BAD = bytes(reversed(GOOD))
GOOD_SHA256 = hashlib.sha256(GOOD).hexdigest()
BAD_SHA256 = hashlib.sha256(BAD).hexdigest()
BY_HASH = f"/dists/x/main/binary-amd64/by-hash/SHA256/{GOOD_SHA256}"


def corrupted(data: bytes) -> bytes:
    """``data`` with its middle byte flipped: same length, other digest."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


def metric(proxy: Any, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    text = proxy.request("/.pkgcache/metrics").body.decode()
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(match.group(3))
    return total


def status(proxy: Any) -> dict[str, Any]:
    return json.loads(proxy.request("/.pkgcache/status.json").body)


def access(proxy: Any, path: str, count: int = 1) -> list[str]:
    """The proxy's access lines for GETs of ``path``, once ``count`` are
    there (each is written as its request ends, maybe just after its
    client had the body)."""

    def lines() -> list[str]:
        return [
            line
            for line in proxy.log().splitlines()
            if "pkgcache.access" in line and f'"GET {path}" ' in line
        ]

    wait_until(lambda: len(lines()) >= count, timeout=30)
    return lines()


def logged(proxy: Any, path: str, text: str) -> bool:
    """Whether an access line of ``path`` holds ``text``, once there."""
    return wait_until(
        lambda: any(text in line for line in access(proxy, path, count=0)), timeout=30
    )


def mismatches(proxy: Any) -> list[str]:
    """The mismatch lines (not the download's own failure line after it)."""
    mismatch = re.compile(r"pkgcache\.\w+: digest mismatch:")
    return [line for line in proxy.log().splitlines() if mismatch.search(line)]


def meta(proxy: Any, path: str) -> dict[str, Any]:
    """The record of the stored file at ``path`` (``CACHE/.meta/..json``)."""
    record = proxy.cache / ".meta" / (path.lstrip("/") + ".json")
    return json.loads(record.read_text())


def curl(url: str, out: Path) -> subprocess.CompletedProcess[str]:
    """curl without retries or proxies, the body in ``out``."""
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--noproxy", "*", "-o", str(out), url],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def mirror_of(folder: Path, files: dict[str, bytes]) -> StaticOrigin:
    for path, body in files.items():
        target = folder / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    return StaticOrigin(folder).start()


def nothing_stored(proxy: Any, path: str) -> None:
    assert not proxy.cached(path).exists(), path
    assert proxy.partials() == []
    assert not (proxy.cache / ".meta" / (path.lstrip("/") + ".json")).exists()


# By-hash: the digest is in the path -------------------------------------


@pytest.fixture
def mirrors(tmp_path: Path) -> Iterator[tuple[StaticOrigin, StaticOrigin]]:
    """A mirror with a corrupt copy of the by-hash file, one with the good."""
    bad = mirror_of(tmp_path / "bad", {BY_HASH: BAD})
    good = mirror_of(tmp_path / "good", {BY_HASH: GOOD})
    yield bad, good
    bad.stop()
    good.stop()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is needed")
def test_a_by_hash_file_that_does_not_match_is_refused_and_the_next_source_serves_it(
    mirrors: tuple[StaticOrigin, StaticOrigin], make_proxy: Any, tmp_path: Path
) -> None:
    bad, good = mirrors
    proxy = make_proxy([bad.url, good.url])

    first = curl(proxy.url + BY_HASH, tmp_path / "first")
    # Content-Length was announced: the client gets fewer bytes, an error.
    assert first.returncode != 0, first
    got = (tmp_path / "first").read_bytes() if (tmp_path / "first").exists() else b""
    assert len(got) < len(GOOD)
    assert bad.count(BY_HASH) == 1 and good.count(BY_HASH) == 0
    nothing_stored(proxy, BY_HASH)
    lines = mismatches(proxy)
    assert len(lines) == 1, proxy.log()
    assert f"{BY_HASH.lstrip('/')} of repository " in lines[0]
    assert f"from {bad.url}" in lines[0]
    assert f"expected sha256:{GOOD_SHA256} (path), got sha256:{BAD_SHA256}" in lines[0]
    assert lines[0].endswith("not stored")
    assert metric(proxy, "pkgcache_digest_mismatches_total") == 1
    assert metric(proxy, "pkgcache_verified_files_total") == 0
    assert "verified=" not in access(proxy, BY_HASH)[-1]

    second = curl(proxy.url + BY_HASH, tmp_path / "second")
    assert second.returncode == 0, second
    assert (tmp_path / "second").read_bytes() == GOOD
    # The distrusted source was asked last: the good one answered first.
    assert good.count(BY_HASH) == 1 and bad.count(BY_HASH) == 1
    assert proxy.cached(BY_HASH).read_bytes() == GOOD
    assert meta(proxy, BY_HASH)["verified"] == f"sha256:{GOOD_SHA256}"
    assert " miss verified=sha256 " in access(proxy, BY_HASH, count=2)[-1]
    assert len(mismatches(proxy)) == 1
    assert metric(proxy, "pkgcache_digest_mismatches_total") == 1
    assert metric(proxy, "pkgcache_verified_files_total") == 1

    third = proxy.request(BY_HASH)
    assert third.status == 200 and third.body == GOOD
    assert third.headers["X-Package-Cache"] == "hit"
    assert bad.count(BY_HASH) == 1 and good.count(BY_HASH) == 1


def test_every_client_streaming_a_file_that_does_not_match_gets_a_broken_body(
    make_proxy: Any,
) -> None:
    """Two clients on one download (slow enough for the second to join
    it): each has the bytes before the last, neither sees a clean end."""
    slow = DigestOrigin(pieces=4, pause=0.3).start()
    try:
        slow.files[BY_HASH.lstrip("/")] = (BAD, {})
        proxy = make_proxy([slow.url])
        responses = [proxy.open(BY_HASH) for _ in range(2)]
        assert [r.headers["X-Package-Cache"] for r in responses] == ["miss", "joined"]
        for response in responses:
            assert response.status == 200
            assert int(response.headers["Content-Length"]) == len(GOOD)
            try:
                body = response.read()
            except Exception:  # IncompleteRead, a reset: both are the error
                continue
            raise AssertionError(f"a clean end after {len(body)} bytes")
        assert slow.requests[BY_HASH.lstrip("/")] == 1
        nothing_stored(proxy, BY_HASH)
        assert len(mismatches(proxy)) == 1, proxy.log()
        lines = access(proxy, BY_HASH, count=2)
        assert [" unclean " in line for line in lines] == [True] * 2
        mismatched = metric(proxy, "pkgcache_digest_mismatches_total", source=slow.url)
        assert mismatched == 1
    finally:
        slow.stop()


# Repr-Digest from the upstream -------------------------------------------


class _Digested(tornado.web.RequestHandler):
    """``/<name>``: the body of ``files[name]`` with its headers."""

    async def get(self, name: str) -> None:
        origin: DigestOrigin = self.settings["origin"]
        origin.requests[name] += 1
        body, headers = origin.files[name]
        for key, value in headers.items():
            self.set_header(key, value)
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Length", str(len(body)))
        step = max(1, len(body) // origin.pieces)
        for start in range(0, len(body), step):
            self.write(body[start : start + step])
            await self.flush()
            await asyncio.sleep(origin.pause)
        self.finish()


class DigestOrigin(LoopbackServer):
    """Serves ``files[name] = (body, headers)`` at ``/<name>``, in
    ``pieces`` writes ``pause`` seconds apart."""

    what = "digest origin"

    def __init__(self, pieces: int = 1, pause: float = 0.0) -> None:
        super().__init__()
        self.pieces = pieces
        self.pause = pause
        self.files: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.requests: Counter[str] = Counter()

    def make_app(self) -> tornado.web.Application:
        return tornado.web.Application([(r"/(.+)", _Digested)], origin=self)


def repr_digest(data: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"


@pytest.fixture
def digest_origin() -> Iterator[DigestOrigin]:
    served = DigestOrigin().start()
    yield served
    served.stop()


def test_a_file_whose_repr_digest_matches_is_stored_and_marked_verified(
    digest_origin: DigestOrigin, make_proxy: Any
) -> None:
    digest_origin.files["good.bin"] = (GOOD, {"Repr-Digest": repr_digest(GOOD)})
    digest_origin.files["plain.bin"] = (BAD, {})
    proxy = make_proxy([digest_origin.url])

    answer = proxy.request("/good.bin")
    assert answer.status == 200 and answer.body == GOOD
    assert proxy.cached("/good.bin").read_bytes() == GOOD
    assert meta(proxy, "/good.bin")["verified"] == f"sha256:{GOOD_SHA256}"
    assert " miss verified=sha256 " in access(proxy, "/good.bin")[-1]
    assert proxy.request("/good.bin").headers["X-Package-Cache"] == "hit"
    assert digest_origin.requests["good.bin"] == 1

    # No digest known: published on its length, and said to be unverified.
    assert proxy.request("/plain.bin").body == BAD
    assert proxy.cached("/plain.bin").read_bytes() == BAD
    assert "verified=" not in access(proxy, "/plain.bin")[-1]
    assert metric(proxy, "pkgcache_verified_files_total") == 1
    assert metric(proxy, "pkgcache_unverified_files_total") == 1
    assert mismatches(proxy) == []


@pytest.mark.parametrize("size", [16 * 1024, 256 * 1024], ids=["small", "big"])
def test_a_hit_of_a_verified_file_says_so_in_its_access_line(
    digest_origin: DigestOrigin, make_proxy: Any, size: int
) -> None:
    """Small files are answered without a RequestHandler (smallhits.py):
    their hits must say it as the others do."""
    body = (GOOD * (size // len(GOOD) + 1))[:size]
    digest_origin.files["f.bin"] = (body, {"Repr-Digest": repr_digest(body)})
    proxy = make_proxy([digest_origin.url])
    assert proxy.request("/f.bin").body == body
    assert " miss verified=sha256 " in access(proxy, "/f.bin")[-1]
    hit = proxy.request("/f.bin")
    assert hit.body == body and hit.headers["X-Package-Cache"] == "hit"
    assert " hit verified=sha256 " in access(proxy, "/f.bin", count=2)[-1]


def test_a_file_whose_repr_digest_does_not_match_is_not_stored(
    digest_origin: DigestOrigin, make_proxy: Any, tmp_path: Path
) -> None:
    digest_origin.files["bad.bin"] = (BAD, {"Repr-Digest": repr_digest(GOOD)})
    proxy = make_proxy([digest_origin.url])

    got = curl(proxy.url + "/bad.bin", tmp_path / "bad.bin")
    assert got.returncode != 0, got
    nothing_stored(proxy, "/bad.bin")
    lines = mismatches(proxy)
    assert len(lines) == 1, proxy.log()
    assert (
        f"expected sha256:{GOOD_SHA256} (header), got sha256:{BAD_SHA256}" in (lines[0])
    )
    assert metric(proxy, "pkgcache_digest_mismatches_total") == 1

    # Asked again, the one source is asked again (and refused again).
    assert curl(proxy.url + "/bad.bin", tmp_path / "again").returncode != 0
    assert digest_origin.requests["bad.bin"] == 2
    nothing_stored(proxy, "/bad.bin")
    assert metric(proxy, "pkgcache_digest_mismatches_total") == 2


# pip: the page's #sha256= -----------------------------------------------


def test_pip_with_a_wheel_that_does_not_match_its_sha256_stores_nothing(
    make_proxy: Any, tmp_path: Path
) -> None:
    repo = PypiRepo.build(tmp_path / "pypi", {"alpha": []}, payload=50_000)
    wheel = next(d for d in repo.dists("alpha") if d.is_wheel)
    on_origin = repo.files / wheel.path
    good = on_origin.read_bytes()
    on_origin.write_bytes(corrupted(good))
    cached = "/pypi/" + wheel.path
    with serve(repo) as (index, files):
        repository = {
            "name": "pypi",
            "prefix": "/pypi/",
            "kind": "pypi",
            "sources": [index.url],
            "file_sources": [files.url],
        }
        proxy = make_proxy([], repository=[repository])
        simple = proxy.url + "/pypi/simple/"

        def download(home: str) -> str:
            out = tmp_path / f"{home}-out"
            return pip(
                tmp_path / home,
                "download",
                "--no-deps",
                "-d",
                str(out),
                "--index-url",
                simple,
                "alpha",
            )

        with pytest.raises(AssertionError):
            download("first")
        assert files.count(wheel.filename) >= 1
        nothing_stored(proxy, cached)
        lines = mismatches(proxy)
        assert lines, proxy.log()
        assert all(wheel.path in line for line in lines)
        assert "of repository pypi from " in lines[0]
        assert f"expected sha256:{wheel.sha256} (index)" in lines[0]
        assert metric(proxy, "pkgcache_digest_mismatches_total", repository="pypi")
        refused = status(proxy)["digest_mismatches"]
        assert len(refused) == len(lines), refused
        assert refused[0]["repository"] == "pypi", refused
        assert wheel.path in refused[0]["path"]
        assert refused[0]["expected"] == f"sha256:{wheel.sha256}"
        # The files host first; a retry of pip's asks it last (the index
        # host serves /packages/ too, with the same corrupt copy).
        assert refused[0]["source"] == files.url
        assert {r["source"] for r in refused} <= {files.url, index.url}

        on_origin.write_bytes(good)
        download("second")
        assert (tmp_path / "second-out" / wheel.filename).read_bytes() == good
        assert proxy.cached(cached).read_bytes() == good
        assert meta(proxy, cached)["verified"] == f"sha256:{wheel.sha256}"
        assert logged(proxy, cached, " miss verified=sha256 ")
        assert metric(proxy, "pkgcache_verified_files_total", repository="pypi") >= 1
        (pypi,) = status(proxy)["repositories"]
        assert pypi["files_verified"] >= 1


@pytest.mark.parametrize(
    "accept",
    ["application/vnd.pypi.simple.v1+json", "text/html"],
    ids=["json-hashes", "html-fragments"],
)
def test_a_wheel_and_its_metadata_are_checked_against_either_page(
    make_proxy: Any, tmp_path: Path, accept: str
) -> None:
    """PEP 691 ``hashes`` and ``core-metadata``, or PEP 503 ``#sha256=``
    and ``data-core-metadata``: the page read through the cache names the
    digests of the wheel and of its ``.metadata``."""
    repo = PypiRepo.build(tmp_path / "pypi", {"alpha": [], "beta": []})
    alpha = next(d for d in repo.dists("alpha") if d.is_wheel)
    beta = next(d for d in repo.dists("beta") if d.is_wheel)
    wheel_file = repo.files / alpha.path
    metadata_file = repo.metadata_file(alpha)
    wheel, metadata = wheel_file.read_bytes(), metadata_file.read_bytes()
    wheel_file.write_bytes(corrupted(wheel))
    metadata_file.write_bytes(corrupted(metadata))
    with serve(repo) as (index, files):
        repository = {
            "name": "pypi",
            "prefix": "/pypi/",
            "kind": "pypi",
            "sources": [index.url],
            "file_sources": [files.url],
        }
        proxy = make_proxy([], repository=[repository])
        for project in ("alpha", "beta"):
            page = proxy.request(f"/pypi/simple/{project}/", headers={"Accept": accept})
            assert page.status == 200

        for path in (alpha.path, alpha.path + ".metadata"):
            with pytest.raises(http.client.HTTPException):
                proxy.request("/pypi/" + path)
            nothing_stored(proxy, "/pypi/" + path)
        lines = mismatches(proxy)
        assert len(lines) == 2, proxy.log()
        assert f"expected sha256:{alpha.sha256} (index)" in lines[0]
        assert f"expected sha256:{alpha.metadata_sha256} (index)" in lines[1]

        # The other project's files match: stored, verified.
        for path, digest in (
            (beta.path, beta.sha256),
            (beta.path + ".metadata", beta.metadata_sha256),
        ):
            assert proxy.request("/pypi/" + path).status == 200
            assert meta(proxy, "/pypi/" + path)["verified"] == f"sha256:{digest}"

        wheel_file.write_bytes(wheel)
        metadata_file.write_bytes(metadata)
        assert proxy.request("/pypi/" + alpha.path).body == wheel
        assert proxy.request("/pypi/" + alpha.path + ".metadata").body == metadata
        assert proxy.cached("/pypi/" + alpha.path).read_bytes() == wheel
        assert metric(proxy, "pkgcache_verified_files_total", repository="pypi") == 4


# package-cache verify ---------------------------------------------------


def verify(cache: Path, *more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pkgcache", "verify", "--cache", str(cache), *more],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_verify_finds_a_stored_file_corrupted_on_disk_and_removes_it(
    mirrors: tuple[StaticOrigin, StaticOrigin],
    digest_origin: DigestOrigin,
    make_proxy: Any,
) -> None:
    _bad, good = mirrors
    digest_origin.files["good.bin"] = (GOOD, {"Repr-Digest": repr_digest(GOOD)})
    proxy = make_proxy([good.url, digest_origin.url])
    assert proxy.request(BY_HASH).body == GOOD
    # Not on the first source: its digest is known from the header alone,
    # kept in the file's record.
    assert proxy.request("/good.bin").body == GOOD
    assert meta(proxy, "/good.bin")["verified"] == f"sha256:{GOOD_SHA256}"
    proxy.stop()

    clean = verify(proxy.cache)
    assert clean.returncode == 0, clean

    for path in (BY_HASH, "/good.bin"):
        proxy.cached(path).write_bytes(BAD)
    found = verify(proxy.cache)
    assert found.returncode == 1, found
    printed = found.stdout + found.stderr
    assert BY_HASH.lstrip("/") in printed, found
    assert "good.bin" in printed, found
    assert proxy.cached(BY_HASH).exists()  # only reported

    removed = verify(proxy.cache, "--remove")
    assert removed.returncode == 1, removed
    assert not proxy.cached(BY_HASH).exists()
    assert not proxy.cached("/good.bin").exists()

    again = verify(proxy.cache)
    assert again.returncode == 0, again


# apt-get: the Packages file's SHA256 of a pool/ file --------------------

DEB = "pool/main/h/hello/hello_1.0_all.deb"


@pytest.mark.skipif(
    shutil.which("apt-ftparchive") is None or shutil.which("apt-get") is None,
    reason="apt-ftparchive and apt-get are needed (Debian: apt-utils and apt)",
)
def test_apt_get_with_a_corrupted_pool_file_then_fixed_on_the_origin(
    make_proxy: Any, tmp_path: Path
) -> None:
    gnupghome = Path(tempfile.mkdtemp(prefix="pkgcache-gpg-"))
    repo = AptRepo(tmp_path / "repo", gnupghome)
    mirror: StaticOrigin | None = None
    try:
        repo.add_package("hello", "1.0", payload=bytes(range(256)) * 400)
        repo.publish()
        good = (repo.root / DEB).read_bytes()
        # apt-ftparchive lists MD5sum, SHA1, SHA256 and SHA512: SHA-256,
        # the preferred (as strong, and cheaper where CPUs hash it), is
        # the one checked.
        good_sha256 = hashlib.sha256(good).hexdigest()
        mirror = StaticOrigin(repo.root).start()
        debian = {
            "name": "debian",
            "prefix": "/debian/",
            "kind": "debian",
            "sources": [mirror.url],
        }
        proxy = make_proxy([], repository=[debian])
        line = f"deb [signed-by={repo.keyring}] {proxy.url}/debian/ stable main"
        client = AptClient(tmp_path / "client", line)
        client.update()
        assert client.candidate("hello") == "1.0"

        # The mirror's copy goes bad after its Packages file was made.
        (repo.root / DEB).write_bytes(corrupted(good))
        with pytest.raises(CommandFailed):
            client.download("hello", tmp_path / "got-bad")
        assert mirror.count(DEB) >= 1
        nothing_stored(proxy, "/debian/" + DEB)
        lines = mismatches(proxy)
        assert lines, proxy.log()
        assert f"{DEB} of repository debian from {mirror.url}" in lines[0]
        assert f"expected sha256:{good_sha256} (index)" in lines[0]
        assert metric(
            proxy, "pkgcache_digest_mismatches_total", repository="debian"
        ) == len(lines)

        # Fixed on the mirror: the same client succeeds, through the cache.
        (repo.root / DEB).write_bytes(good)
        deb = client.download("hello", tmp_path / "got-good")
        assert deb.read_bytes() == good
        assert proxy.cached("/debian/" + DEB).read_bytes() == good
        record = meta(proxy, "/debian/" + DEB)
        assert record["verified"] == f"sha256:{good_sha256}"
        assert logged(proxy, "/debian/" + DEB, " miss verified=sha256 ")
        fetched = mirror.count(DEB)
        again = AptClient(tmp_path / "client-2", line)
        again.update()
        assert again.download("hello", tmp_path / "got-2").read_bytes() == good
        assert mirror.count(DEB) == fetched

        # Off-line, with the repositories of the config: the stored
        # Packages file names what the .deb must hash to (its record, of
        # another size now, is not believed).
        proxy.stop()
        proxy.cached("/debian/" + DEB).write_bytes(good + b"tail")
        found = verify(proxy.cache, "--config", str(proxy.config))
        assert found.returncode == 1, found
        assert DEB in found.stdout + found.stderr, found
    finally:
        if mirror is not None:
            mirror.stop()
        repo.close()
        shutil.rmtree(gnupghome, ignore_errors=True)


# npm: the document's dist.integrity -------------------------------------

NPM_PACKAGE = "pkgcache-digest-demo"


@pytest.mark.skipif(bool(missing_tools()), reason="npm and node are needed")
def test_npm_with_a_wrong_integrity_stores_nothing_then_the_fixed_document_installs(
    make_proxy: Any, tmp_path: Path
) -> None:
    (tarball,) = pack([(NPM_PACKAGE, "1.0.0", {})], tmp_path / "packs")
    good = tarball.path.read_bytes()
    other = base64.b64encode(hashlib.sha512(corrupted(good)).digest()).decode()
    # The shasum stays right: the preferred digest known (sha512) is checked.
    wrong = dataclasses.replace(tarball, integrity=f"sha512-{other}")
    registry = NpmRegistry(tmp_path / "registry").start()
    try:
        registry.publish(wrong)
        repository = {
            "name": "npm",
            "prefix": "/npm/",
            "kind": "npm",
            "sources": [registry.url],
            "fresh_for": 600,
        }
        proxy = make_proxy([], repository=[repository])
        cached = f"/npm{tarball.registry_path}"
        wanted = {NPM_PACKAGE: "1.0.0"}

        npm = NpmClient(tmp_path / "client-1", f"{proxy.url}/npm/", wanted)
        with pytest.raises(NpmFailed):
            npm.install()
        assert registry.count(tarball.registry_path) >= 1
        nothing_stored(proxy, cached)
        lines = mismatches(proxy)
        assert lines, proxy.log()
        assert (
            f"{tarball.registry_path.lstrip('/')} of repository npm from " in (lines[0])
        )
        assert f"(index), got sha512:{hashlib.sha512(good).hexdigest()}" in lines[0]
        assert metric(proxy, "pkgcache_digest_mismatches_total", repository="npm")

        # The registry mends its document; once the stored one is stale,
        # the cache learns the right integrity from the new one.
        registry.publish(tarball)
        proxy.advance(601)
        npm = NpmClient(tmp_path / "client-2", f"{proxy.url}/npm/", wanted)
        npm.install()
        assert npm.installed(NPM_PACKAGE) == "1.0.0"
        assert proxy.cached(cached).read_bytes() == good
        record = meta(proxy, cached)
        assert record["verified"] == f"sha512:{hashlib.sha512(good).hexdigest()}"
        assert logged(proxy, cached, " miss verified=sha512 ")
    finally:
        registry.stop()
