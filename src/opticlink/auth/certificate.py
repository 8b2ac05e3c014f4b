"""The service's TLS certificate: the user's own, or a self-signed one made once and kept.

A browser grants a page the microphone (talk) and SharedArrayBuffer (the audio ring) only in a
secure context, which off localhost means HTTPS. So when the service listens on a non-loopback
address it serves HTTPS; with no certificate configured it makes a self-signed one (ECDSA P-256,
one year) in the data directory, reuses it on the next start and remakes it when it has expired,
no longer names the address listened on, or no longer matches its key. The SHA-256 fingerprint is
what a user compares with what the browser shows before trusting it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
import os
import socket
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

CERT_FILE = "tls-cert.pem"
KEY_FILE = "tls-key.pem"
VALIDITY = dt.timedelta(days=365)  # browsers refuse leaf certificates valid for more than 398 days
BACKDATE = dt.timedelta(hours=1)  # a client whose clock is a little behind still accepts a fresh certificate
RENEW_BEFORE = dt.timedelta(days=1)  # remade at a start within a day of expiry, not minutes before it
LOOPBACK_NAMES = ("localhost",)
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class TlsFiles:
    """What the web server loads, and what the user is shown."""

    cert: Path
    key: Path
    fingerprint: str  # SHA-256 of the (first) certificate's DER, AB:CD:... as browsers show it
    self_signed: bool  # ours, kept in the data directory (else the user's own)
    not_after: dt.datetime


def is_loopback(host: str) -> bool:
    """True for addresses only this machine reaches: 127.0.0.0/8, ::1 and localhost."""
    if host.lower().rstrip(".") in LOOPBACK_NAMES or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def wants_tls(mode: bool | str, host: str) -> bool:
    """`tls`: true, false, or "auto" (HTTPS unless the host is a loopback address)."""
    if isinstance(mode, bool):
        return mode
    if mode != "auto":
        raise ValueError(f"tls must be true, false or auto, not {mode!r}")
    return not is_loopback(host)


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def certificate_names(host: str, extra: Iterable[str] = ()) -> list[str]:
    """The names the certificate must carry for `host`: the address itself (or, for a wildcard, this
    machine's name and its addresses), the `extra` names the service is reached by, then localhost,
    127.0.0.1 and ::1."""
    names: list[str] = []
    if host.strip("[]") in WILDCARD_HOSTS:
        hostname = socket.gethostname()
        names += [hostname, socket.getfqdn(hostname)]
        with contextlib.suppress(OSError):  # what this machine's name resolves to (/etc/hosts, DNS)
            names += [info[4][0] for info in socket.getaddrinfo(hostname, None, proto=socket.IPPROTO_TCP)]
    else:
        names.append(host.strip("[]"))
    names += [n.strip("[]") for n in extra]
    names += ["localhost", "127.0.0.1", "::1"]
    out: list[str] = []
    for name in names:
        name = name.split("%")[0].lower()  # a link-local scope is no part of a certificate name
        if name and name not in out:
            out.append(name)
    return out


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _san_names(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {n.lower() for n in san.get_values_for_type(x509.DNSName)} | {
        str(a) for a in san.get_values_for_type(x509.IPAddress)}


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Write whole or not at all (a temporary file renamed over), created with `mode` from the start,
    so a private key is never readable by others, not even for a moment."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp creates it 0600
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def generate(cert_path: Path, key_path: Path, names: list[str], now: dt.datetime | None = None) -> x509.Certificate:
    """Make a self-signed ECDSA P-256 certificate for `names` (the first is its common name)."""
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OpticLink (self-signed)"),
                         x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])])
    public = key.public_key()
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
            # an end-entity certificate: Firefox refuses a CA certificate used as a server's
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # the key first: a start that reads a new certificate with an old key remakes both
    _write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()), 0o600)
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert


def _reusable(cert_path: Path, key_path: Path, names: list[str], now: dt.datetime) -> x509.Certificate | None:
    """The kept certificate, if it is still good for `names` at `now` and matches its key."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        log.warning("the kept TLS certificate in %s is unreadable (%s): making a new one", cert_path.parent, exc)
        return None
    if cert.not_valid_after_utc - RENEW_BEFORE <= now or cert.not_valid_before_utc > now:
        log.warning("the self-signed TLS certificate expires %s: making a new one (trust it again)",
                    cert.not_valid_after_utc.isoformat())
        return None
    missing = [n for n in names if n not in _san_names(cert)]
    if missing:
        log.warning("the self-signed TLS certificate does not name %s: making a new one (trust it again)",
                    ", ".join(missing))
        return None
    if key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) \
            != cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo):
        log.warning("the kept TLS certificate does not match its key: making a new one")
        return None
    if key_path.stat().st_mode & 0o077:
        log.warning("%s was readable by others: now 0600", key_path)
        key_path.chmod(0o600)
    return cert


def self_signed(data_dir: Path, host: str, now: dt.datetime | None = None, extra: Iterable[str] = ()) -> TlsFiles:
    """The self-signed certificate in `data_dir` for `host` (and `extra` names): reused while good, else made anew."""
    now = now or dt.datetime.now(dt.UTC)
    data_dir = Path(data_dir).expanduser()
    cert_path, key_path = data_dir / CERT_FILE, data_dir / KEY_FILE
    names = certificate_names(host, extra)
    cert = _reusable(cert_path, key_path, names, now)
    if cert is None:
        cert = generate(cert_path, key_path, names, now)
        log.info("made a self-signed TLS certificate for %s in %s", ", ".join(names), data_dir)
    return TlsFiles(cert_path, key_path, fingerprint(cert), self_signed=True, not_after=cert.not_valid_after_utc)


def user_certificate(cert_path: Path, key_path: Path) -> TlsFiles:
    """The user's own certificate (PEM, the chain after it allowed) and key, used as they are; checked
    here so that a wrong path or a mismatched key is a clear error at start, not a failed handshake."""
    cert_path, key_path = Path(cert_path).expanduser(), Path(key_path).expanduser()
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert_path, key_path)
    except (ValueError, ssl.SSLError) as exc:  # SSLError first: it is an OSError too
        raise ValueError(f"tls_cert {cert_path} and tls_key {key_path} are not a PEM certificate and its "
                         f"key: {exc}") from exc
    except OSError as exc:
        raise ValueError(f"tls_cert/tls_key: cannot read {exc.filename or cert_path}: {exc.strerror or exc}") from exc
    if cert.not_valid_after_utc <= dt.datetime.now(dt.UTC):
        log.warning("the TLS certificate %s expired %s", cert_path, cert.not_valid_after_utc.isoformat())
    return TlsFiles(cert_path, key_path, fingerprint(cert), self_signed=False, not_after=cert.not_valid_after_utc)
