"""Real RPM repositories and a real dnf client, in scratch folders only.

``RpmRepo`` builds noarch packages with rpmbuild and publishes them with
createrepo_c (repodata files carry their digest in their names, as on a
real mirror). ``DnfClient`` is a dnf whose every piece of state (config,
repos, cache, logs, history, rpmdb) lives under its own folder: the
machine's /etc/dnf, /var/cache/dnf, /var/lib/dnf and /var/log are never
read or written, nor is the invoking user's ~/.rpmdb or ~/.rpmmacros.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

TOOLS = ("dnf", "createrepo_c", "rpmbuild")

# Environment variables that would send a tool somewhere other than where a
# test points it (a proxy, another Python).
_DROPPED = {
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "ftp_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "FTP_PROXY",
    "NO_PROXY",
    "PYTHONPATH",
    "PYTHONHOME",
}


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


class CommandFailed(RuntimeError):
    """A tool exited with an error or ran out of time; the message has it all."""


def scratch_env(home: Path) -> dict[str, str]:
    """The environment for a tool: HOME is a scratch folder, since rpm puts
    its database at ``~/.rpmdb`` on Debian and reads ``~/.rpmmacros``."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    env["HOME"] = str(home)
    env["LC_ALL"] = "C.UTF-8"
    return env


def run(
    args: list[str], home: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``args``; raise ``CommandFailed`` with the full output on failure."""
    home.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=scratch_env(home),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as error:
        raise CommandFailed(
            _report(args, f"timed out after {timeout}s", error.stdout, error.stderr)
        ) from None
    if result.returncode != 0:
        raise CommandFailed(
            _report(args, f"exit {result.returncode}", result.stdout, result.stderr)
        )
    return result


def _report(
    args: list[str],
    outcome: str,
    stdout: str | bytes | None,
    stderr: str | bytes | None,
) -> str:
    def text(value: str | bytes | None) -> str:
        if isinstance(value, bytes):
            return value.decode(errors="replace")
        return value or ""

    return (
        f"command: {' '.join(args)}\n{outcome}\n"
        f"--- stdout ---\n{text(stdout)}\n--- stderr ---\n{text(stderr)}\n"
    )


SPEC = """\
Name: {name}
Version: {version}
Release: 1
Summary: {name} {version}, a package-cache test package
License: MIT
BuildArch: noarch

%description
{name} {version}, built by package-cache's tests.

%install
mkdir -p %{{buildroot}}/usr/share/{name}
echo "{name} {version}" > %{{buildroot}}/usr/share/{name}/{name}.txt

%files
/usr/share/{name}/{name}.txt
"""


class RpmRepo:
    """A yum/dnf repository in ``root``, built with scratch state in ``work``."""

    def __init__(self, root: Path, work: Path) -> None:
        self.root = root
        self.work = work
        root.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        # The whole-second mtime repomd.xml got at the last publish().
        self._published: int | None = None

    def add_package(self, name: str, version: str) -> Path:
        """Build ``name-version-1.noarch.rpm`` and put it in the repository."""
        top = self.work / "rpmbuild"
        tmp = self.work / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        spec = self.work / f"{name}-{version}.spec"
        spec.write_text(SPEC.format(name=name, version=version))
        run(
            [
                "rpmbuild",
                "--define",
                f"_topdir {top}",
                "--define",
                f"_tmppath {tmp}",
                "--define",
                f"_dbpath {self.work / 'rpmdb'}",
                "-bb",
                str(spec),
            ],
            home=self.work / "home",
        )
        filename = f"{name}-{version}-1.noarch.rpm"
        built = top / "RPMS" / "noarch" / filename
        target = self.root / filename
        shutil.copyfile(built, target)
        return target

    def publish(self) -> None:
        """(Re)write repodata/ for the packages now in the repository.

        A republished ``repomd.xml`` gets an mtime at least one whole second
        later than the previous one, so its Last-Modified (whole seconds)
        moves forward too, as on a real mirror."""
        run(["createrepo_c", str(self.root)], home=self.work / "home")
        mtime = int(time.time())
        if self._published is not None:
            mtime = max(mtime, self._published + 1)
        os.utime(self.repomd, (mtime, mtime))
        self._published = mtime

    @property
    def repomd(self) -> Path:
        return self.root / "repodata" / "repomd.xml"

    def path(self, name: str, version: str | None = None) -> Path:
        """The one rpm of package ``name`` (of ``version``, if given)."""
        (found,) = self.root.glob(f"{name}-{version + '-' if version else ''}*.rpm")
        return found


class DnfClient:
    """A dnf with all its state in ``folder``, using one repository at ``baseurl``.

    The options are the minimal set that keeps dnf off the machine's state:
    ``-c`` (our own dnf.conf instead of /etc/dnf/dnf.conf), ``--installroot``
    (history, rpmdb, logs, locks and the default cache go below it),
    ``reposdir`` (only our .repo file, not the machine's repositories) and
    ``--releasever`` (an empty installroot has none to detect; without it
    dnf warns). ``cachedir`` is only for clarity: without it the cache is
    ``root/var/cache/dnf``, which is just as private.
    """

    REPO = "pkgcache-test"

    def __init__(self, folder: Path, baseurl: str, timeout: float = 20) -> None:
        self.folder = folder
        self.timeout = timeout
        self.root = folder / "root"
        self.repos = folder / "repos"
        self.cache = folder / "cache"
        self.downloads = folder / "dl"
        self.config = folder / "dnf.conf"
        self.repos.mkdir(parents=True, exist_ok=True)
        # Our own (empty) main config: /etc/dnf/dnf.conf may say
        # skip_if_unavailable=True, which would hide a failing repository.
        self.config.write_text("[main]\n")
        (self.repos / f"{self.REPO}.repo").write_text(
            f"[{self.REPO}]\n"
            f"name={self.REPO}\n"
            f"baseurl={baseurl.rstrip('/')}/\n"
            "gpgcheck=0\n"
            "skip_if_unavailable=0\n"
        )

    def options(self) -> list[str]:
        return [
            "-y",
            "-c",
            str(self.config),
            f"--installroot={self.root}",
            f"--setopt=reposdir={self.repos}",
            f"--setopt=cachedir={self.cache}",
            "--releasever=40",
        ]

    def dnf(self, *args: str) -> subprocess.CompletedProcess[str]:
        try:
            return run(
                ["dnf", *self.options(), *args],
                home=self.folder / "home",
                timeout=self.timeout,
            )
        except CommandFailed as error:
            raise CommandFailed(f"{error}{self._logs()}") from None

    def _logs(self) -> str:
        """dnf's own logs (they name every URL librepo tried), for failures."""
        logs = self.root / "var" / "log"
        return "".join(
            f"--- {log.name} ---\n{log.read_text(errors='replace')}\n"
            for log in sorted(logs.glob("dnf*.log"))
        )

    def makecache(self) -> str:
        return self.dnf("makecache").stdout

    def download(self, name: str) -> Path:
        """``dnf install --downloadonly`` of ``name``; the path of its rpm."""
        result = self.dnf(
            "install", "--downloadonly", f"--downloaddir={self.downloads}", name
        )
        found = sorted(self.downloads.glob(f"{name}-*.rpm"))
        if len(found) != 1:
            raise CommandFailed(
                f"expected one {name} rpm in {self.downloads}, found {found}\n"
                + result.stdout
                + result.stderr
            )
        return found[0]
