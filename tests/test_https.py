"""https:// sources: verified against a CA file (here a self-signed cert)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.origin import Origin, content

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl")


@pytest.fixture
def tls_origin(tmp_path: Path) -> Iterator[tuple[Origin, Path]]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = Origin(ssl_options=context).start()
    yield server, cert
    server.stop()


def test_https_source_verified_with_ca_file(tls_origin, make_proxy):
    origin, cert = tls_origin
    proxy = make_proxy([origin.source("ok")], ca_file=str(cert))
    response = proxy.request("/files/70000/tls.tar.gz")
    assert response.status == 200
    assert response.body == content("tls.tar.gz", 70000)


def test_https_source_with_an_unknown_certificate_is_refused(tls_origin, make_proxy):
    origin, _cert = tls_origin
    proxy = make_proxy([origin.source("ok")])
    response = proxy.request("/files/70000/untrusted.tar.gz")
    assert response.status == 502
    assert not proxy.cached("/files/70000/untrusted.tar.gz").exists()
    assert "SSL" in proxy.log() or "certificate" in proxy.log()
