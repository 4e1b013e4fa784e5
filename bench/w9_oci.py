"""W9 container image pulls: 8 skopeo clients pulling one image at once,
through package-cache and through Debian's docker-registry (the CNCF
distribution registry) in proxy mode, cold and then warm, in one run.

The origin is a docker-registry of its own on loopback with filesystem
storage and its access log on (``tests/ociregistry.py``); one image of
``LAYERS`` layers of random bytes (about ``IMAGE_SIZE`` in all, gzip'd as
registries serve them; 12 MiB with ``--quick``) is pushed to it with
skopeo. Each run starts both caches fresh:

- package-cache: a ``[[repository]]`` of kind ``oci`` named ``hub`` with
  ``fresh_for = "10m"``; clients pull ``CACHE/hub/library/w9:1``.
- the distribution registry with ``proxy: remoteurl:`` the origin;
  clients pull ``PROXY/library/w9:1``.

Cold: 8 ``skopeo copy --src-tls-verify=false docker://... dir:...`` at
once into an empty cache; warm: 8 more at once. The time is the wall time
until the last of the 8 has finished; the upstream requests are the
origin's access log lines meanwhile. Targets: cold and warm time at most
the distribution proxy's (ratio <= 1.0), one upstream GET per blob cold,
no upstream request on a warm pull within ``fresh_for`` (the distribution
proxy asks for the tag on every pull).
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from runner import MIB, Bench, tests_module

LAYERS = 6
IMAGE_SIZE = 200 * MIB
QUICK_SIZE = 12 * MIB
CLIENTS = 8

PC_CONF = """\
[[repository]]
name = "hub"
kind = "oci"
sources = ["{origin}"]
fresh_for = "10m"
"""


def run(bench: Bench) -> None:
    if not (shutil.which("skopeo") and shutil.which("docker-registry")):
        print("bench: W9: needs skopeo and docker-registry; skipped", file=sys.stderr)
        return
    w9 = W9(bench)
    try:
        w9.run()
    finally:
        w9.close()


class W9:
    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.oci = tests_module("ociregistry")
        self.folder = bench.s.work / "w9"
        self.folder.mkdir()
        self.skopeo = self.oci.Skopeo(self.folder / "skopeo")
        self.origin = self.oci.DistributionRegistry(
            self.folder / "origin", access_log=True
        ).start()
        layout = self.oci.Layout(self.folder / "layout")
        size = QUICK_SIZE if bench.quick else IMAGE_SIZE
        layers = [
            gzip.compress(os.urandom(size // LAYERS), compresslevel=1, mtime=0)
            for _ in range(LAYERS)
        ]
        self.image = layout.manifest(layers)
        layout.tag("w9", self.image)
        self.skopeo.push(layout.folder, "w9", f"{self.origin.host}/library/w9:1")
        shutil.rmtree(layout.folder)
        self.blobs = len(self.image.blobs)
        self.running: list[object] = []
        self.seq = 0

    def close(self) -> None:
        self.origin.stop()

    def pulls(self, name: str) -> float:
        """``CLIENTS`` skopeo copies of ``name`` at once; the wall time
        until the last one finished."""
        outputs = []
        for _ in range(CLIENTS):
            self.seq += 1
            outputs.append(self.folder / f"pull-{self.seq}")

        def pull(output: Path) -> subprocess.CompletedProcess[str]:
            return self.skopeo.pull(name, f"dir:{output}")

        started = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as pool:
            done = list(pool.map(pull, outputs))
        seconds = time.monotonic() - started
        for result in done:
            if result.returncode != 0:
                raise RuntimeError(f"bench: W9: pull of {name} failed: {result.stderr}")
        layer = self.image.layer_digests()[0].split(":")[1]
        for output in outputs:
            if (output / layer).stat().st_size != len(
                self.image.blobs["sha256:" + layer]
            ):
                raise RuntimeError(f"bench: W9: {name} gave another layer")
            shutil.rmtree(output)
        return seconds

    def once(self, turn: int) -> dict[str, float]:
        s = self.bench.s
        pc_port, pc = s.package_cache(
            "",
            f"w9-pc-{turn}",
            cache=self.folder / f"pc-cache-{turn}",
            config=PC_CONF.format(origin=self.origin.url),
        )
        proxy = self.oci.DistributionRegistry(
            self.folder / f"proxy-{turn}", proxy=self.origin.url
        ).start()
        caches = {
            "pc": f"127.0.0.1:{pc_port}/hub/library/w9:1",
            "dist": f"{proxy.host}/library/w9:1",
        }
        order = list(caches) if turn % 2 == 0 else list(reversed(caches))
        found: dict[str, float] = {}
        try:
            for phase in ("cold", "warm"):
                for name in order:
                    before = len(self.origin.requests())
                    found[f"{name} {phase}"] = self.pulls(caches[name])
                    asked = self.origin.requests()[before:]
                    gets = [p for m, p in asked if m == "GET" and "/blobs/" in p]
                    found[f"{name} {phase} requests"] = len(asked)
                    found[f"{name} {phase} blob gets"] = len(gets)
        finally:
            proxy.stop()
            pc.terminate()
            pc.wait(15)
            shutil.rmtree(self.folder / f"pc-cache-{turn}", ignore_errors=True)
            shutil.rmtree(self.folder / f"proxy-{turn}", ignore_errors=True)
        return found

    def run(self) -> None:
        runs = [self.once(turn) for turn in range(self.bench.runs)]

        def column(key: str) -> list[float]:
            return [found[key] for found in runs]

        def ratio(phase: str) -> list[float]:
            return [f[f"pc {phase}"] / f[f"dist {phase}"] for f in runs]

        size = (QUICK_SIZE if self.bench.quick else IMAGE_SIZE) // MIB
        what = f"{CLIENTS} skopeo pulls of {LAYERS} layers, {size} MiB"
        record = self.bench.record
        record("W9", f"cold {what}: time / distribution proxy", ratio("cold"), "<= 1.0")
        record("W9", f"warm {what}: time / distribution proxy", ratio("warm"), "<= 1.0")
        record("W9", "cold time, s: package-cache", column("pc cold"), "-")
        record("W9", "cold time, s: distribution proxy", column("dist cold"), "-")
        record("W9", "warm time, s: package-cache", column("pc warm"), "-")
        record("W9", "warm time, s: distribution proxy", column("dist warm"), "-")
        per_blob = [f["pc cold blob gets"] / self.blobs for f in runs]
        record("W9", "upstream GETs per blob cold: package-cache", per_blob, "1")
        dist_blob = [f["dist cold blob gets"] / self.blobs for f in runs]
        record("W9", "upstream GETs per blob cold: distribution proxy", dist_blob, "-")
        for name, label in (("pc", "package-cache"), ("dist", "distribution proxy")):
            warm = [f[f"{name} warm requests"] / CLIENTS for f in runs]
            record(
                "W9",
                f"upstream requests per warm pull: {label}",
                warm,
                "0" if name == "pc" else "-",
            )
