"""Each kind's finder, in process, on indexes made here: what a pass would
fetch after clients downloaded some packages. The end-to-end passes with
apt, pip and npm are in ``test_prefetch.py``."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

from pkgcache.prefetch.alpine import AlpineFinder
from pkgcache.prefetch.arch import ArchFinder
from pkgcache.prefetch.debian import DebianFinder
from pkgcache.prefetch.finders import IndexRead
from pkgcache.prefetch.rpm import RpmFinder


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _desc(name: str, version: str, arch: str = "x86_64") -> bytes:
    filename = f"{name}-{version}-{arch}.pkg.tar.zst"
    return (
        f"%FILENAME%\n{filename}\n\n%NAME%\n{name}\n\n%VERSION%\n{version}\n\n"
        f"%CSIZE%\n1234\n\n%ARCH%\n{arch}\n\n%SHA256SUM%\n{'0' * 64}\n"
    ).encode()


def test_arch_the_newer_package_and_its_signature_and_nothing_else() -> None:
    database = _tar_gz(
        {
            "hello-2.0-1/desc": _desc("hello", "2.0-1"),
            "hello-1.0-1/desc": _desc("hello", "1.0-1"),
            "other-9.0-1/desc": _desc("other", "9.0-1"),
        }
    )
    folder = "/arch/core/os/x86_64"
    recent = [f"{folder}/core.db", f"{folder}/hello-1.0-1-x86_64.pkg.tar.zst"]
    finder = ArchFinder("/arch/")
    indexes = finder.indexes(recent)
    assert indexes == [IndexRead(f"{folder}/core.db")]
    wanted = finder.wanted(recent, {indexes[0]: database}, versions=1)
    assert [w.path for w in wanted] == [
        f"{folder}/hello-2.0-1-x86_64.pkg.tar.zst",
        f"{folder}/hello-2.0-1-x86_64.pkg.tar.zst.sig",
    ]
    assert wanted[0].size == 1234


def test_alpine_the_newer_apk_of_the_same_arch() -> None:
    text = (
        b"P:hello\nV:2.0-r0\nA:x86_64\nS:99\n\n"
        b"P:hello\nV:1.0-r0\nA:x86_64\nS:98\n\n"
        b"P:other\nV:5-r0\nA:x86_64\nS:1\n"
    )
    index = _tar_gz({"APKINDEX": text})
    folder = "/alpine/v3.20/main/x86_64"
    recent = [f"{folder}/APKINDEX.tar.gz", f"{folder}/hello-1.0-r0.apk"]
    finder = AlpineFinder("/alpine/")
    [read] = finder.indexes(recent)
    wanted = finder.wanted(recent, {read: index}, versions=1)
    assert [(w.path, w.size) for w in wanted] == [(f"{folder}/hello-2.0-r0.apk", 99)]


PRIMARY = b"""<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" packages="3">
<package type="rpm"><name>hello</name><arch>noarch</arch>
<version epoch="0" ver="2.0" rel="1"/><size package="321"/>
<location href="Packages/h/hello-2.0-1.noarch.rpm"/></package>
<package type="rpm"><name>hello</name><arch>noarch</arch>
<version epoch="0" ver="1.0" rel="1"/><size package="320"/>
<location href="Packages/h/hello-1.0-1.noarch.rpm"/></package>
<package type="rpm"><name>other</name><arch>noarch</arch>
<version epoch="0" ver="3" rel="1"/><size package="1"/>
<location href="Packages/o/other-3-1.noarch.rpm"/></package>
</metadata>
"""

REPOMD = b"""<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo">
<data type="primary"><location href="repodata/abc-primary.xml.gz"/></data>
<data type="filelists"><location href="repodata/def-filelists.xml.gz"/></data>
</repomd>
"""


def test_rpm_follows_repomd_to_the_primary_and_finds_the_newer_rpm() -> None:
    root = "/fedora/40/x86_64/os/"
    recent = [root + "repodata/repomd.xml", root + "Packages/h/hello-1.0-1.noarch.rpm"]
    finder = RpmFinder("/fedora/")
    [repomd] = finder.indexes(recent)
    [primary] = finder.more_indexes(recent, {repomd: REPOMD})
    assert primary.path == root + "repodata/abc-primary.xml.gz"
    bodies = {repomd: REPOMD, primary: gzip.compress(PRIMARY)}
    wanted = finder.wanted(recent, bodies, versions=1)
    assert [(w.path, w.size) for w in wanted] == [
        (root + "Packages/h/hello-2.0-1.noarch.rpm", 321)
    ]


def test_rpm_refuses_a_primary_with_entities() -> None:
    root = "/r/"
    recent = [root + "repodata/repomd.xml", root + "hello-1.0-1.noarch.rpm"]
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>' + PRIMARY[39:]
    read = IndexRead(root + "repodata/abc-primary.xml")
    assert RpmFinder("/r/").wanted(recent, {read: bomb}, versions=1) == []


def test_debian_by_hash_readers_follow_the_refreshed_release() -> None:
    packages = (
        b"Package: hello\nVersion: 2.0\nArchitecture: all\n"
        b"Filename: pool/main/h/hello/hello_2.0_all.deb\nSize: 10\n\n"
        b"Package: hello\nVersion: 1.0\nArchitecture: all\n"
        b"Filename: pool/main/h/hello/hello_1.0_all.deb\nSize: 9\n"
    )
    packed = gzip.compress(packages)
    digest = hashlib.sha256(packed).hexdigest()
    release = (
        "Origin: test\nAcquire-By-Hash: yes\nSHA256:\n"
        f" {digest} {len(packed)} main/binary-amd64/Packages.gz\n"
    ).encode()
    suite = "/debian/dists/stable"
    recent = [
        f"{suite}/InRelease",
        f"{suite}/main/binary-amd64/by-hash/SHA256/{'1' * 64}",
        "/debian/pool/main/h/hello/hello_1.0_all.deb",
    ]
    finder = DebianFinder("/debian/")
    [in_release] = finder.indexes(recent)
    [by_hash] = finder.more_indexes(recent, {in_release: release})
    assert by_hash.path == f"{suite}/main/binary-amd64/by-hash/SHA256/{digest}"
    wanted = finder.wanted(recent, {in_release: release, by_hash: packed}, 1)
    assert [(w.path, w.size) for w in wanted] == [
        ("/debian/pool/main/h/hello/hello_2.0_all.deb", 10)
    ]
