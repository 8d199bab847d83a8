"""`jitsi-py check --config FILE` against a real stack and a real coturn, and each failing check.

Certificates are made here and trusted through SSL_CERT_FILE of the check's process (as a CA
in the system store would be); coturn tests skip where it is not installed.
"""
from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import sys
from pathlib import Path

import pytest

from conftest import make_config
from turn_server import Coturn, free_port

SECRET = "0123456789abcdef-test-secret"
REPO = str(Path(__file__).resolve().parent.parent)


def make_certificate(tmp_path: Path, name: str = "localhost", days: float = 90) -> tuple[Path, Path]:
    """A self-signed CA certificate for `name`, its auth., focus. and conference. subdomains (where
    the stack's own parts log in) and 127.0.0.1, valid for `days` more days."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in (name, f"auth.{name}", f"focus.{name}", f"conference.{name}")]
                + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o644)  # coturn may drop privileges before reading it
    return cert_path, key_path


def write_config(tmp_path: Path, cert: Path, key: Path, *, turn: str = "", ports: dict | None = None) -> Path:
    ports = ports or {}
    listeners = "".join(f'[{name}]\nlisten = "127.0.0.1"\nport = {ports.get(name, 0)}\n'
                        + ("tls = true\n" if name == "http" else "")
                        for name in ("c2s", "components", "http", "admin"))
    path = tmp_path / "jitsi-py.toml"
    path.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n[auth]\nscram_iterations = 4096\n'
                    f'[tls]\ncert = "{cert}"\nkey = "{key}"\n' + listeners
                    + '[bridge]\nmedia_address = "127.0.0.1"\nport_min = 0\nport_max = 0\n' + turn)
    return path


async def run_check(path: Path, trust: Path) -> tuple[int, list[str]]:
    env = dict(os.environ, PYTHONPATH=REPO, SSL_CERT_FILE=str(trust))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "jitsi_py", "check", "--config", str(path),
                                                env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = out.decode().splitlines()
    assert lines, err.decode()
    return proc.returncode, lines


def failing(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("FAIL")]


async def test_a_running_stack_with_coturn_passes_every_check(tmp_path, monkeypatch):
    """Listeners in use and answering, a trusted certificate for the domain, TURN allocations over
    UDP, TCP and TLS with credentials from [turn] secret; then coturn with another secret fails."""
    from jitsi_py.config import load_config
    from jitsi_py.stack import Stack
    if not Coturn.available():
        pytest.skip("coturn is not installed (apt-get install coturn): no turnserver binary")
    cert, key = make_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the stack's own parts check [tls] cert against the CAs
    cfg = make_config(turn__secret=SECRET)
    coturn = Coturn(tmp_path / "coturn", cfg, cert, key)
    coturn.tmp.mkdir()
    turn = f'[turn]\nhost = "127.0.0.1"\nport = {cfg.turn.port}\ntls_port = {cfg.turn.tls_port}\nsecret = "{SECRET}"\n'
    ports = {name: free_port() for name in ("c2s", "components", "http", "admin")}
    path = write_config(tmp_path, cert, key, turn=turn, ports=ports)
    stack = Stack(load_config(str(path)))
    try:
        await coturn.start()
        await stack.start()
        code, lines = await run_check(path, cert)
        assert code == 0 and not failing(lines), lines
        for name in ("XMPP clients", "XMPP components", "HTTP", "Admin HTTP"):
            assert any(line.startswith(f"OK   {name} 127.0.0.1:") and "in use and answers" in line
                       for line in lines), (name, lines)
        assert "OK   TLS certificate is valid for localhost and trusted by this machine's CAs" in lines, lines
        for label in (f"turn:127.0.0.1:{cfg.turn.port} over UDP", f"turn:127.0.0.1:{cfg.turn.port} over TCP",
                      f"turns:127.0.0.1:{cfg.turn.tls_port} (TLS)"):
            assert any(line.startswith(f"OK   TURN {label} accepts our credentials") for line in lines), lines
        # no NAT on loopback: STUN sees the media address itself, which only this machine reaches
        assert any(line.startswith("WARN Participants send media to 127.0.0.1") for line in lines), lines
        assert lines[-1] == f"all {len(lines) - 1} checks passed"

        path.write_text(path.read_text().replace(SECRET, "another-secret-of-enough-length"))
        code, lines = await run_check(path, cert)
        assert code == 1, lines
        refused = [line for line in failing(lines) if "refused our credentials" in line]
        assert len(refused) == 3 and "static-auth-secret must equal [turn] secret" in refused[0], lines
    finally:
        await stack.stop()
        await coturn.stop()


@pytest.mark.parametrize("name, days, expect", [
    ("other.example", 90, "TLS certificate for localhost: Hostname mismatch"),
    ("localhost", 5, "expires on"),
    ("localhost", -1, "expired on"),
])
async def test_a_bad_certificate_fails_its_check(tmp_path, name, days, expect):
    cert, key = make_certificate(tmp_path, name, days)
    code, lines = await run_check(write_config(tmp_path, cert, key), cert)
    assert code == 1, lines
    assert [line for line in failing(lines) if expect in line], lines
    assert all("TLS certificate" in line for line in failing(lines)), lines


async def test_an_unreachable_turn_server_fails_its_check(tmp_path):
    cert, key = make_certificate(tmp_path)
    port = free_port()  # nothing listens there
    turn = f'[turn]\nhost = "127.0.0.1"\nport = {port}\nturns = false\nsecret = "{SECRET}"\n'
    code, lines = await run_check(write_config(tmp_path, cert, key, turn=turn), cert)
    assert code == 1, lines
    bad = failing(lines)
    assert len(bad) == 3, lines  # TURN over UDP, over TCP, and STUN for the bridge's address
    assert any(f"TURN turn:127.0.0.1:{port} over UDP" in line for line in bad), lines
    assert any(f"TURN turn:127.0.0.1:{port} over TCP: cannot connect" in line for line in bad), lines
    assert any(line.startswith(f"FAIL STUN 127.0.0.1:{port} did not answer") for line in bad), lines
