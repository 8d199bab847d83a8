"""TLS material for STARTTLS and HTTPS: the admin's certificate, or one we make once.

A fresh install must offer encryption without an admin first buying or generating a
certificate, so when none is configured a self-signed one is generated into the data
directory and reused from then on.
"""
from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .config import XmppConfig, guest_domain

log = logging.getLogger(__name__)


def _resolve(cfg: XmppConfig, value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute() and cfg.path:
        path = Path(cfg.path).resolve().parent / path
    return path


def ensure_certificate(cfg: XmppConfig, data_dir: Path) -> tuple[Path, Path]:
    if cfg.tls.cert and cfg.tls.key:
        return _resolve(cfg, cfg.tls.cert), _resolve(cfg, cfg.tls.key)
    domain = cfg.server.domain.lower()
    tls_dir = Path(data_dir) / "tls"
    cert_path, key_path = tls_dir / f"{domain}.crt", tls_dir / f"{domain}.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in (
        domain, f"*.{domain}", f"auth.{domain}", f"conference.{domain}", f"focus.{domain}", "localhost")]
    guests = guest_domain(cfg)  # named: "*.localhost" matches nothing (a wildcard needs two labels)
    if guests and guests != domain:
        names.append(x509.DNSName(guests))
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    log.info("generated a self-signed certificate for %s in %s", domain, tls_dir)
    return cert_path, key_path


def server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    return ctx
