"""The HTTPS certificate: self-signed once and kept, remade when expired, the user's used as is, and
`opticlink serve` answering over HTTPS with the certificate whose fingerprint it printed."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import re
import ssl
import stat
import subprocess
import sys

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from opticlink.api.config import ServiceConfig, load_config
from opticlink.api.server import tls_files
from opticlink.auth.certificate import (
    CERT_FILE,
    KEY_FILE,
    fingerprint,
    generate,
    is_loopback,
    self_signed,
    user_certificate,
    wants_tls,
)

OPTICLINK = os.path.join(os.path.dirname(sys.executable), "opticlink")


def load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName), [str(a) for a in san.get_values_for_type(x509.IPAddress)]


def test_generated_once_and_reused(tmp_path):
    first = self_signed(tmp_path, "192.0.2.7")
    pem, key = first.cert.read_bytes(), first.key.read_bytes()
    again = self_signed(tmp_path, "192.0.2.7")
    assert again.fingerprint == first.fingerprint
    assert (again.cert.read_bytes(), again.key.read_bytes()) == (pem, key)  # not rewritten
    assert first.self_signed and first.cert == tmp_path / CERT_FILE and first.key == tmp_path / KEY_FILE
    assert fingerprint(load(first.cert)) == first.fingerprint
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", first.fingerprint)


def test_regenerated_when_expired(tmp_path):
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    old = self_signed(tmp_path, "192.0.2.7", now=start)
    assert load(old.cert).not_valid_after_utc == start + dt.timedelta(days=365)
    assert self_signed(tmp_path, "192.0.2.7", now=start + dt.timedelta(days=200)).fingerprint == old.fingerprint
    later = start + dt.timedelta(days=366)
    new = self_signed(tmp_path, "192.0.2.7", now=later)
    assert new.fingerprint != old.fingerprint
    cert = load(new.cert)
    assert cert.not_valid_before_utc <= later < cert.not_valid_after_utc
    assert new.not_after == cert.not_valid_after_utc
    assert stat.S_IMODE(new.key.stat().st_mode) == 0o600


def test_regenerated_when_host_changes_or_key_mismatches(tmp_path):
    first = self_signed(tmp_path, "192.0.2.7")
    moved = self_signed(tmp_path, "cam-server.example")
    assert moved.fingerprint != first.fingerprint
    assert "cam-server.example" in sans(load(moved.cert))[0]
    generate(tmp_path / "other.pem", tmp_path / KEY_FILE, ["cam-server.example"])  # a key that is not the cert's
    mended = self_signed(tmp_path, "cam-server.example")
    assert mended.fingerprint != moved.fingerprint
    key = serialization.load_pem_private_key(mended.key.read_bytes(), None)
    assert key.public_key() == load(mended.cert).public_key()


def test_sans_and_key_type(tmp_path):
    files = self_signed(tmp_path / "data", "192.0.2.7")
    cert = load(files.cert)
    dns, ips = sans(cert)
    assert dns == ["localhost"]
    assert ips == ["192.0.2.7", "127.0.0.1", "::1"]
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= dt.timedelta(days=365, hours=1)
    assert cert.issuer == cert.subject
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    named = load(self_signed(tmp_path / "named", "nvr.home.arpa").cert)
    assert sans(named) == (["nvr.home.arpa", "localhost"], ["127.0.0.1", "::1"])
    configured = tls_files(ServiceConfig(host="192.0.2.7", data_dir=tmp_path / "hosts", hosts=["nvr.example"]))
    assert sans(load(configured.cert)) == (["nvr.example", "localhost"], ["192.0.2.7", "127.0.0.1", "::1"])
    wildcard_dns, wildcard_ips = sans(load(self_signed(tmp_path / "any", "0.0.0.0").cert))
    assert {"localhost"} < set(wildcard_dns) and "0.0.0.0" not in wildcard_ips  # this machine's name instead
    assert all(ipaddress.ip_address(a) for a in wildcard_ips)


def test_key_file_mode_0600(tmp_path):
    os.umask(old := os.umask(0))  # even with a permissive umask
    try:
        files = self_signed(tmp_path, "192.0.2.7")
    finally:
        os.umask(old)
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left behind
    files.key.chmod(0o644)  # loosened by hand: tightened again on the next start
    self_signed(tmp_path, "192.0.2.7")
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600


def test_user_certificate_used_as_is(tmp_path):
    mine = tmp_path / "mine"
    generate(mine / "fullchain.pem", mine / "privkey.pem", ["cams.example.org"])
    before = {p.name: p.read_bytes() for p in mine.iterdir()}
    data = tmp_path / "data"
    config = ServiceConfig(host="192.0.2.7", data_dir=data, tls_cert=mine / "fullchain.pem",
                           tls_key=mine / "privkey.pem")
    files = tls_files(config)
    assert files is not None and not files.self_signed
    assert (files.cert, files.key) == (mine / "fullchain.pem", mine / "privkey.pem")
    assert files.fingerprint == fingerprint(load(mine / "fullchain.pem"))
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == before
    assert not data.exists()  # nothing self-signed made
    with pytest.raises(ValueError, match="tls_cert"):
        user_certificate(mine / "fullchain.pem", tmp_path / "missing.pem")
    other = tmp_path / "other"
    generate(other / "c.pem", other / "k.pem", ["x.example"])
    with pytest.raises(ValueError, match="not a PEM certificate and its key"):
        user_certificate(mine / "fullchain.pem", other / "k.pem")
    with pytest.raises(ValueError, match="together"):
        ServiceConfig(tls_cert=mine / "fullchain.pem")


def test_when_https(tmp_path):
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST."]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.4", "nvr.local", ""]))
    assert wants_tls("auto", "0.0.0.0") and not wants_tls("auto", "127.0.0.1")
    assert wants_tls(True, "127.0.0.1") and not wants_tls(False, "0.0.0.0")
    assert tls_files(ServiceConfig(data_dir=tmp_path)) is None
    assert not list(tmp_path.iterdir())
    (tmp_path / "cameras.yaml").write_text("host: 0.0.0.0\ndata_dir: state\ntls: auto\n")
    config = load_config(tmp_path / "cameras.yaml")
    assert config.data_dir == tmp_path / "state"  # relative to the YAML
    files = tls_files(config)
    assert files is not None and files.cert.parent == tmp_path / "state"


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_serve_answers_over_https_with_the_printed_fingerprint(tmp_path):
    config = tmp_path / "cameras.yaml"
    config.write_text("host: 127.0.0.1\ntls: true\ndata_dir: data\ncameras: []\n")
    env = {**os.environ, "OPTICLINK_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([OPTICLINK, "serve", str(config), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        banner = proc.stdout.readline()
        url = re.search(r"https://127\.0\.0\.1:(\d+)", banner)
        assert url, banner
        printed = proc.stdout.readline()
        printed_fingerprint = re.search(r"SHA-256 fingerprint ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})", printed)
        assert printed_fingerprint, printed
        cert_file = tmp_path / "data" / CERT_FILE
        assert stat.S_IMODE((tmp_path / "data" / KEY_FILE).stat().st_mode) == 0o600

        served = ssl.get_server_certificate(("127.0.0.1", int(url.group(1))))
        der = ssl.PEM_cert_to_DER_cert(served)
        assert hashlib.sha256(der).hexdigest().upper() == printed_fingerprint.group(1).replace(":", "")
        assert der == load(cert_file).public_bytes(serialization.Encoding.DER)

        trusting = ssl.create_default_context(cafile=str(cert_file))  # verifies the chain and 127.0.0.1
        with httpx.Client(verify=trusting, timeout=10) as client:
            health = client.get(f"{url.group(0)}/healthz")
            if health.status_code == 404:  # no /healthz yet: any route proves the handshake
                health = client.get(f"{url.group(0)}/api/cameras")
            assert health.status_code in (200, 401)
        with pytest.raises(httpx.ConnectError), httpx.Client(timeout=10) as client:  # not trusted by default
            client.get(f"{url.group(0)}/api/cameras")
    finally:
        proc.terminate()
        proc.wait(10)

    # the next start serves the same certificate
    proc = subprocess.Popen([OPTICLINK, "serve", str(config), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        proc.stdout.readline()
        assert printed_fingerprint.group(1) in proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(10)
