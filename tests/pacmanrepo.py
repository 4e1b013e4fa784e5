"""A real pacman repository and a scratch pacman client, for the tests that
run pacman through package-cache.

``PacmanRepo(root)`` builds ``root/core/os/x86_64/`` with packages made by
bsdtar and a database made by repo-add. ``PacmanClient(folder, server_url)``
is a pacman with all its state (root, databases, cache, log, keyring) in
``folder``: it never touches the machine's own pacman state.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

TOOLS = ("pacman", "repo-add", "bsdtar")

REPO = "core"
ARCH = "x86_64"
# Every subprocess is bounded: a pacman that hangs fails the test instead.
TIMEOUT = 30


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


class CommandFailed(RuntimeError):
    pass


def run(args: list[str], cwd: Path | None = None) -> str:
    """Run ``args``; return stdout and stderr, or raise with all of both."""
    try:
        result = subprocess.run(
            args,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as error:
        raise CommandFailed(
            f"{' '.join(args)} timed out after {TIMEOUT}s\n"
            f"stdout:\n{error.stdout}\nstderr:\n{error.stderr}"
        ) from error
    output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    if result.returncode != 0:
        where = f" (in {cwd})" if cwd else ""
        raise CommandFailed(
            f"{' '.join(args)}{where} exited with {result.returncode}\n{output}"
        )
    return output


class PacmanRepo:
    """A pacman repository ``core`` for ``x86_64`` below ``root``.

    ``root`` is what a mirror serves: the folder that contains ``core/``.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / REPO / "os" / ARCH
        self.folder.mkdir(parents=True, exist_ok=True)
        self._build = root.parent / (root.name + "-build")
        self.packages: list[str] = []
        # The whole-second mtime the databases got at the last publish().
        self._published: int | None = None

    def add_package(self, name: str, version: str = "1.0-1") -> Path:
        """Build ``name-version-any.pkg.tar.zst`` (one small file in it)."""
        source = self._build / f"{name}-{version}"
        files = source / "usr" / "share" / name
        files.mkdir(parents=True)
        payload = f"{name} {version}\n"
        (files / "README").write_text(payload)
        (source / ".PKGINFO").write_text(
            f"pkgname = {name}\n"
            f"pkgbase = {name}\n"
            f"pkgver = {version}\n"
            f"pkgdesc = {name}, a package for the package-cache tests\n"
            "url = http://example.invalid/\n"
            "builddate = 1700000000\n"
            "packager = package-cache tests <tests@example.invalid>\n"
            f"size = {len(payload)}\n"
            "arch = any\n"
            "license = MIT\n"
        )
        filename = f"{name}-{version}-any.pkg.tar.zst"
        package = self.folder / filename
        run(["bsdtar", "--zstd", "-cf", str(package), ".PKGINFO", "usr"], cwd=source)
        self.packages.append(filename)
        return package

    def package(self, filename: str) -> Path:
        return self.folder / filename

    def publish(self) -> None:
        """(Re)write ``core.db`` and ``core.files`` for every package added.

        A republished database gets an mtime at least one whole second
        later than the previous one: Last-Modified (and so pacman's
        If-Modified-Since) has whole seconds, and a republish within the
        same second would look unchanged to pacman.
        """
        run(["repo-add", "-q", f"{REPO}.db.tar.gz", *self.packages], cwd=self.folder)
        # repo-add makes core.db a symlink to core.db.tar.gz (core.files
        # likewise). A mirror has them as plain files: replace the links by
        # copies, so the origin does not depend on how its server treats
        # symlinks.
        for link in (f"{REPO}.db", f"{REPO}.files"):
            path = self.folder / link
            if path.is_symlink():
                target = path.resolve()
                path.unlink()
                shutil.copyfile(target, path)
        mtime = int(time.time())
        if self._published is not None:
            mtime = max(mtime, self._published + 1)
        for name in (f"{REPO}.db", f"{REPO}.files"):
            os.utime(self.folder / name, (mtime, mtime))
        self._published = mtime


class PacmanClient:
    """pacman with all its state in ``folder``, syncing from ``server_url``."""

    def __init__(self, folder: Path, server_url: str) -> None:
        self.folder = folder
        self.root = folder / "root"
        self.dbpath = folder / "db"
        self.cachedir = folder / "pkgcache"
        self.logfile = folder / "pacman.log"
        self.gpgdir = folder / "gnupg"
        self.hookdir = folder / "hooks"
        for path in (self.root, self.dbpath, self.cachedir, self.gpgdir, self.hookdir):
            path.mkdir(parents=True, exist_ok=True)
        self.config = folder / "pacman.conf"
        self.config.write_text(
            "[options]\n"
            f"RootDir = {self.root}\n"
            f"DBPath = {self.dbpath}\n"
            f"CacheDir = {self.cachedir}\n"
            f"LogFile = {self.logfile}\n"
            f"GPGDir = {self.gpgdir}\n"
            f"HookDir = {self.hookdir}\n"
            f"Architecture = {ARCH}\n"
            "SigLevel = Never\n"
            "LocalFileSigLevel = Never\n"
            "\n"
            f"[{REPO}]\n"
            f"Server = {server_url.rstrip('/')}/$repo/os/$arch\n"
        )

    def pacman(self, *args: str) -> str:
        return run(
            [
                "pacman",
                "--config",
                str(self.config),
                "--noconfirm",
                "--noprogressbar",
                *args,
            ]
        )

    def sync(self) -> str:
        """``pacman -Sy``: fetch the repository's database."""
        return self.pacman("-Sy")

    def version(self, name: str) -> str:
        """The version of ``name`` in the synced databases (``pacman -Sp``)."""
        output = self.pacman("-Sp", "--print-format", "version=%v", name)
        found = re.findall(r"^version=(\S+)$", output, re.MULTILINE)
        if len(found) != 1:
            raise CommandFailed(f"pacman -Sp {name}: no single version\n{output}")
        return found[0]

    def download(self, name: str, version: str | None = None) -> Path:
        """``pacman -Sw name``; the path of the package in the CacheDir.

        ``version`` (VERSION-RELEASE): the one package of that version, when
        the CacheDir already holds an older one."""
        output = self.pacman("-Sw", name)
        found = [
            path
            for path in sorted(self.cachedir.glob(f"{name}-*.pkg.tar.zst"))
            # NAME-VERSION-RELEASE-ARCH.pkg.tar.zst, NAME may hold dashes.
            if path.name.rsplit("-", 3)[0] == name
            and (version is None or "-".join(path.name.rsplit("-", 3)[1:3]) == version)
        ]
        if len(found) != 1:
            listing = sorted(p.name for p in self.cachedir.iterdir())
            raise CommandFailed(
                f"pacman -Sw {name} left {listing} in {self.cachedir}\n{output}"
            )
        return found[0]
