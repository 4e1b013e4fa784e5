"""Service files, ebuilds and the sdist: what an admin installs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

INIT_SCRIPT = ROOT / "contrib/openrc/init.d/package-cache"
CONF_D = ROOT / "contrib/openrc/conf.d/package-cache"
UNIT = ROOT / "contrib/systemd/package-cache.service"
EBUILDS = sorted((ROOT / "ebuild").rglob("*.ebuild"))


def test_init_script_and_ebuilds_parse():
    assert subprocess.run(["sh", "-n", str(INIT_SCRIPT)]).returncode == 0
    assert subprocess.run(["sh", "-n", str(CONF_D)]).returncode == 0
    names = {path.name for path in EBUILDS}
    assert {"package-cache-9999.ebuild", "package-cache-0.3.0.ebuild"} <= names
    assert "package-cache-0.ebuild" in names
    for ebuild in EBUILDS:
        assert subprocess.run(["bash", "-n", str(ebuild)]).returncode == 0
        text = ebuild.read_text()
        assert "EAPI=8" in text


def test_current_ebuild_matches_the_version():
    from pkgcache import __version__

    ebuild = ROOT / f"ebuild/net-proxy/package-cache/package-cache-{__version__}.ebuild"
    text = ebuild.read_text()
    assert "DISTUTILS_USE_PEP517=setuptools" in text
    assert "inherit distutils-r1" in text
    for installed in ("newinitd", "newconfd", "systemd_dounit", "doins package-cache"):
        assert installed in text


def init_script_args(conf: str) -> str:
    """Run the init script's start_pre with conf.d content; return the args."""
    script = (
        f"{conf}\nRC_SVCNAME=package-cache\n"
        'checkpath() { echo "checkpath $*" >&2; }\n'
        f'. {INIT_SCRIPT}\nstart_pre\necho "$command_user|$command_args"\n'
    )
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_init_script_turns_conf_d_into_flags():
    output = init_script_args(CONF_D.read_text())
    user, args = output.split("|")
    assert user == "package-cache:portage"
    assert args.split() == [
        "--syslog",
        "--cache",
        "/var/cache/package-cache",
        "--host",
        "0.0.0.0",
        "--port",
        "4000",
        "--source",
        "http://distfiles.gentoo.org",
    ]


def test_init_script_with_a_config_file_passes_only_what_is_set():
    output = init_script_args(
        'PC_CONFIG=/etc/package-cache.conf\nSOURCES="http://a http://b"\n'
        'PC_OPTS="-vv"\n'
    )
    args = output.split("|")[1].split()
    assert args == [
        "--syslog",
        "--config",
        "/etc/package-cache.conf",
        "--source",
        "http://a",
        "--source",
        "http://b",
        "-vv",
    ]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd")
def test_systemd_unit_verifies(tmp_path: Path):
    text = UNIT.read_text()
    assert "ExecStart=/usr/bin/package-cache --config /etc/package-cache.conf" in text
    for hardening in (
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ReadWritePaths=/var/cache/package-cache",
    ):
        assert hardening in text
    # verify checks that ExecStart exists: point it at this checkout's CLI.
    launcher = tmp_path / "package-cache"
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} -m pkgcache "$@"\n')
    launcher.chmod(0o755)
    unit = tmp_path / "package-cache.service"
    unit.write_text(text.replace("/usr/bin/package-cache", str(launcher)))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr


def test_sdist_contains_what_the_ebuild_installs(tmp_path: Path):
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "-o", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    sdist = next(tmp_path.glob("package_cache-*.tar.gz"))
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for required in (
        "contrib/openrc/init.d/package-cache",
        "contrib/openrc/conf.d/package-cache",
        "contrib/systemd/package-cache.service",
        "contrib/systemd/package-cache.sysusers",
        "contrib/systemd/package-cache.tmpfiles",
        "ebuild/net-proxy/package-cache/package-cache-9999.ebuild",
        "ebuild/acct-user/package-cache/package-cache-0.ebuild",
        "package-cache.conf",
        "README.md",
        "tests/conftest.py",
        "tests/test_streaming.py",
    ):
        assert required in names, required


def test_ebuilds_require_the_tornado_setup_py_requires():
    """./dev test smoke-tests the floor in setup.py; the ebuilds must not
    promise an older tornado than that."""
    (floor,) = re.findall(r'"tornado>=([\d.]+)"', (ROOT / "setup.py").read_text())
    for ebuild in EBUILDS:
        if "net-proxy" in ebuild.parts:
            found = re.findall(r">=dev-python/tornado-([\d.]+)", ebuild.read_text())
            assert found == [floor], ebuild


@pytest.mark.smoke
def test_the_proxy_runs_the_tornado_of_this_interpreter(proxy):
    """The proxy is ``sys.executable -m pkgcache``, so it imports the tornado
    that pytest runs with: ./dev test relies on that to try the oldest
    declared tornado, and says which one it wants (PKGCACHE_EXPECT_TORNADO)."""
    import tornado

    assert proxy.request("/files/1000/which-tornado.tar").status == 200
    assert proxy.process is not None
    pid = proxy.process.pid
    argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    assert os.fsdecode(argv0) == sys.executable
    # tornado's C extension, when it has one here, shows which copy of
    # tornado the running proxy imported.
    here = os.path.dirname(tornado.__file__) + os.sep
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    loaded = {line.split()[-1] for line in maps if "/tornado/" in line}
    assert all(path.startswith(here) for path in loaded), (here, loaded)
    expected = os.environ.get("PKGCACHE_EXPECT_TORNADO")
    if expected:
        assert tornado.version == expected, f"tornado {tornado.version} in {here}"
