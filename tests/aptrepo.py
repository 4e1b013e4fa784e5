"""A real, signed apt repository and a scratch apt client, for the tests
that run apt-get through package-cache.

``AptRepo`` builds a repository the way a small mirror looks: ``.deb``
files under ``pool/``, ``dists/stable/main/binary-amd64/Packages`` (and
``Packages.gz``), ``dists/stable/Release`` and its clear-signed
``InRelease``, made with dpkg-deb, apt-ftparchive and a throwaway gpg key.

``AptClient`` runs apt-get and apt-cache as root against scratch state
only: its own sources list, lists, cache, status file and keys. apt reads
``APT_CONFIG`` before anything else, so the file there points every
``Dir::Etc`` setting into the scratch folder and the machine's
``/etc/apt/apt.conf.d`` (hooks, proxies, index targets), sources,
preferences and trusted keys are never read.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

#: Every subprocess here is bounded by this many seconds.
TIMEOUT = 30

ARCH = "amd64"
SUITE = "stable"
COMPONENT = "main"
KEY_NAME = "package-cache test repository"

#: Lines in apt's output that mean something went wrong even when the exit
#: code says it did not (apt-get update exits 0 after a failed fetch).
FAILURE = re.compile(r"^(Err:|E:|W:)|Failed to fetch|NO_PUBKEY|BADSIG", re.M)


class CommandFailed(AssertionError):
    pass


def run(
    command: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    out: Path | None = None,
    check_output: bool = False,
) -> str:
    """Run ``command`` (bounded by ``TIMEOUT``); its stdout and stderr, merged,
    or with ``out`` its stdout written there and its stderr returned.

    Raises with all it said if it exits non-zero or, with ``check_output``,
    if a line of it says that something failed.
    """
    with open(out if out is not None else os.devnull, "wb") as sink:
        try:
            done = subprocess.run(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink if out is not None else subprocess.PIPE,
                stderr=subprocess.PIPE if out is not None else subprocess.STDOUT,
                timeout=TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as timeout:
            said = (timeout.output or b"").decode(errors="replace")
            raise CommandFailed(f"{command!r} ran over {TIMEOUT} s:\n{said}") from None
    said = (done.stderr if out is not None else done.stdout).decode(errors="replace")
    if done.returncode != 0 or (check_output and FAILURE.search(said)):
        raise CommandFailed(f"{command!r} exited {done.returncode}:\n{said}")
    return said


class AptRepo:
    """A signed repository at ``root`` (suite stable, component main, amd64)."""

    def __init__(self, root: Path, gnupghome: Path) -> None:
        """``gnupghome`` should have a short path: gpg-agent's socket is in it."""
        self.root = root
        self.gnupghome = gnupghome
        self.dists = root / "dists" / SUITE
        self.binary = self.dists / COMPONENT / f"binary-{ARCH}"
        self.keyring = root.parent / f"{root.name}-keyring.gpg"
        self._work = root.parent / f"{root.name}-build"
        self._stamp = 0.0
        self.binary.mkdir(parents=True, exist_ok=True)
        self._work.mkdir(parents=True, exist_ok=True)
        gnupghome.mkdir(parents=True, exist_ok=True)
        gnupghome.chmod(0o700)
        self._gpg("--quick-gen-key", KEY_NAME, "ed25519", "sign", "never")
        self._gpg("--yes", "--output", str(self.keyring), "--export", KEY_NAME)
        if self.keyring.stat().st_size == 0:
            raise CommandFailed(f"gpg exported no key for {KEY_NAME!r}")

    def pool_path(self, name: str, version: str) -> str:
        """The package's path below the repository root (a URL path)."""
        return f"pool/{COMPONENT}/{name[0]}/{name}/{name}_{version}_all.deb"

    def add_package(self, name: str, version: str, payload: bytes = b"") -> Path:
        """Build ``name`` ``version`` into the pool; ``payload`` is shipped as
        ``/usr/share/NAME/payload`` (random bytes make a large .deb)."""
        source = self._work / f"{name}_{version}"
        shutil.rmtree(source, ignore_errors=True)
        (source / "DEBIAN").mkdir(parents=True)
        (source / "DEBIAN" / "control").write_text(
            f"Package: {name}\n"
            f"Version: {version}\n"
            "Architecture: all\n"
            "Maintainer: package-cache tests <tests@example.invalid>\n"
            f"Description: {name} for the package-cache tests\n"
        )
        share = source / "usr" / "share" / name
        share.mkdir(parents=True)
        (share / "payload").write_bytes(payload)
        deb = self.root / self.pool_path(name, version)
        deb.parent.mkdir(parents=True, exist_ok=True)
        run(["dpkg-deb", "--build", "--root-owner-group", str(source), str(deb)])
        return deb

    def publish(self) -> None:
        """Rebuild Packages, Packages.gz, Release and InRelease.

        Each publication's files get one modification time, a whole second
        later than the previous publication's (ahead of the clock if need
        be): a mirror publishes hours apart, and apt revalidates its
        lists with If-Modified-Since, whose dates count whole seconds, so two
        publications within a second would look like one.
        """
        index = self.binary / "Packages"
        run(["apt-ftparchive", "packages", "pool"], cwd=self.root, out=index)
        with gzip.open(self.binary / "Packages.gz", "wb") as packed:
            packed.write(index.read_bytes())
        for old in ("Release", "InRelease"):
            (self.dists / old).unlink(missing_ok=True)
        # A temporary file first: ``release`` scans the folder it describes.
        draft = self._work / "Release"
        run(
            [
                "apt-ftparchive",
                "-o",
                f"APT::FTPArchive::Release::Suite={SUITE}",
                "-o",
                f"APT::FTPArchive::Release::Codename={SUITE}",
                "-o",
                f"APT::FTPArchive::Release::Architectures={ARCH}",
                "-o",
                f"APT::FTPArchive::Release::Components={COMPONENT}",
                "release",
                str(self.dists),
            ],
            out=draft,
        )
        shutil.move(draft, self.dists / "Release")
        self._gpg(
            "--local-user",
            KEY_NAME,
            "--clearsign",
            "-o",
            str(self.dists / "InRelease"),
            str(self.dists / "Release"),
        )
        self._stamp = max(float(math.ceil(time.time())), self._stamp + 1)
        released = ("Release", "InRelease")
        made = [index, self.binary / "Packages.gz", *(self.dists / n for n in released)]
        for path in made:
            os.utime(path, (self._stamp, self._stamp))

    def close(self) -> None:
        """Stop the gpg-agent that key generation and signing started."""
        env = {**os.environ, "GNUPGHOME": str(self.gnupghome)}
        subprocess.run(
            ["gpgconf", "--kill", "all"],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )

    def _gpg(self, *args: str) -> str:
        home = ["--homedir", str(self.gnupghome)]
        return run(["gpg", *home, "--batch", "--passphrase", "", *args])


class AptClient:
    """apt-get and apt-cache with scratch state in ``folder``, one source."""

    def __init__(
        self, folder: Path, source_line: str, proxy: str | None = None
    ) -> None:
        """``proxy``: the ``Acquire::http::Proxy`` URL, for sources written
        with their own host (apt then sends absolute-form requests there);
        without it, apt connects to each source's host itself."""
        self.folder = folder
        etc = folder / "etc"
        # Empty folders, not missing ones: apt warns about a missing
        # preferences.d (and the warning would read as a failure).
        parts = ("apt.conf.d", "sources.list.d", "preferences.d", "trusted.gpg.d")
        subs = ("lists/partial", "cache/archives/partial", "state", "log")
        for sub in (*subs, *(f"etc/{part}" for part in parts)):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        (etc / "sources.list").write_text(source_line + "\n")
        (folder / "status").write_text("")
        self.config = folder / "apt.conf"
        # Read before /etc/apt: nothing of the machine's configuration is used.
        settings = {
            "Dir::Etc": etc,
            "Dir::Etc::Main": etc / "apt.conf",
            "Dir::Etc::Parts": etc / "apt.conf.d",
            "Dir::Etc::SourceList": etc / "sources.list",
            "Dir::Etc::SourceParts": etc / "sources.list.d",
            "Dir::Etc::Preferences": etc / "preferences",
            "Dir::Etc::PreferencesParts": etc / "preferences.d",
            "Dir::Etc::Trusted": etc / "trusted.gpg",
            "Dir::Etc::TrustedParts": etc / "trusted.gpg.d",
            "Dir::State": folder / "state",
            "Dir::State::Lists": folder / "lists",
            "Dir::State::status": folder / "status",
            "Dir::Cache": folder / "cache",
            "Dir::Log": folder / "log",
            "Debug::NoLocking": "1",
            "APT::Sandbox::User": "root",
            "APT::Architecture": ARCH,
            "APT::Architectures": ARCH,
            "Acquire::Languages": "none",
            # Only for sources on 127.0.0.1 (package-cache as a mirror): the
            # per-host setting leaves every other host to ``proxy``.
            "Acquire::http::Proxy::127.0.0.1": "DIRECT",
            "Acquire::http::Timeout": "10",
            "Acquire::Retries": "0",
        }
        if proxy is not None:
            settings["Acquire::http::Proxy"] = proxy
        self.config.write_text(
            "".join(f'{key} "{value}";\n' for key, value in settings.items())
        )
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.lower().endswith("_proxy")
        }
        self.env.update(APT_CONFIG=str(self.config), LC_ALL="C", LANG="C")

    def update(self) -> str:
        """``apt-get update``; its output, or a failure with all of it."""
        return self._apt(["apt-get", "update"])

    def download(self, name: str, into: Path) -> Path:
        """``apt-get download name`` in ``into``; the path of the .deb."""
        into.mkdir(parents=True, exist_ok=True)
        before = set(into.glob("*.deb"))
        output = self._apt(["apt-get", "download", name], cwd=into)
        new = [p for p in into.glob(f"{name}_*.deb") if p not in before]
        if len(new) != 1:
            raise CommandFailed(f"apt-get download {name} left {new!r}:\n{output}")
        return new[0]

    def candidate(self, name: str) -> str:
        """The candidate version that ``apt-cache policy`` shows for ``name``."""
        output = self._apt(["apt-cache", "policy", name])
        found = re.search(r"^\s*Candidate:\s*(\S+)", output, re.M)
        if found is None:
            raise CommandFailed(
                f"apt-cache policy {name} shows no candidate:\n{output}"
            )
        return found.group(1)

    def _apt(self, command: list[str], cwd: Path | None = None) -> str:
        return run(command, cwd=cwd or self.folder, env=self.env, check_output=True)
