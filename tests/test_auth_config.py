"""`[auth] mode` and the keys each mode needs: check-config names file, line and key."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from jitsi_py.config import ConfigError, load_config
from xmpp_plugins.config import guest_domain, guests_wait_for_host

SECRET = "s" * 32


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "jitsi-py.toml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_default_is_open_with_guests_on_the_main_domain():
    cfg = load_config(None)
    assert cfg.auth.mode == "open"
    assert guest_domain(cfg) == "localhost"
    assert not guests_wait_for_host(cfg)


def test_secure_mode_puts_guests_on_their_own_domain(tmp_path):
    cfg = load_config(write(tmp_path, '[auth]\nmode = "secure"\n'))
    assert guest_domain(cfg) == "guest.localhost"
    assert guests_wait_for_host(cfg)


def test_token_mode_has_no_guests_unless_a_guest_domain_is_set(tmp_path):
    cfg = load_config(write(tmp_path, f'[auth]\nmode = "token"\njwt_secret = "{SECRET}"\n'))
    assert guest_domain(cfg) == ""
    assert not guests_wait_for_host(cfg)
    cfg = load_config(write(tmp_path, f'[auth]\nmode = "token"\njwt_secret = "{SECRET}"\nguest_domain = "guest.localhost"\n'))
    assert guests_wait_for_host(cfg)


@pytest.mark.parametrize("text, line, key, fragment", [
    ('[auth]\nmode = "closed"\n', 2, "auth.mode", "allowed: open, secure, token"),
    ('[auth]\nmode = "token"\n', 1, "auth.jwt_secret", "must be set in mode \"token\""),
    ('[auth]\nmode = "token"\njwt_secret = "short"\n', 3, "auth.jwt_secret", "5 bytes, too short"),
    ('[auth]\nmode = "token"\njwt_algorithm = "none"\n', 3, "auth.jwt_algorithm", "allowed: HS256, RS256, ES256"),
    ('[auth]\nmode = "token"\njwt_algorithm = "RS256"\n', 1, "auth.jwt_public_key", "PEM public key file"),
    ('[auth]\nmode = "token"\njwt_algorithm = "RS256"\njwt_key_url = "http://keys.example.org/asap"\n', 4,
     "auth.jwt_key_url", "must be https"),
    (f'[auth]\nmode = "token"\njwt_secret = "{SECRET}"\njwt_key_url = "https://keys.example.org"\n', 4,
     "auth.jwt_key_url", "HS256 uses jwt_secret"),
    ('[auth]\nmode = "token"\njwt_algorithm = "RS256"\njwt_public_key = "absent.pem"\n', 4,
     "auth.jwt_public_key", "cannot read"),
    ('[auth]\nmode = "token"\njwt_algorithm = "RS256"\njwt_public_key = "jitsi-py.toml"\n', 4,
     "auth.jwt_public_key", "not a PEM public key"),
    ('[server]\ndomain = "meet.example.org"\n[auth]\nmode = "secure"\nguest_domain = "meet.example.org"\n', 5,
     "auth.guest_domain", "must differ from server.domain"),
])
def test_each_auth_mistake_names_file_line_key(tmp_path, text, line, key, fragment):
    path = write(tmp_path, text)
    found = problems(path)
    assert any(p.startswith(f"{path}:{line}: key '{key}'") and fragment in p for p in found), found


def test_public_key_of_the_wrong_kind_is_refused(tmp_path):
    (tmp_path / "ec.pem").write_bytes(public_pem(ec.generate_private_key(ec.SECP256R1())))
    path = write(tmp_path, '[auth]\nmode = "token"\njwt_algorithm = "RS256"\njwt_public_key = "ec.pem"\n')
    assert any("not an RSA public key" in p for p in problems(path))


def test_good_token_configs_load(tmp_path):
    (tmp_path / "rsa.pem").write_bytes(public_pem(rsa.generate_private_key(65537, 2048)))
    (tmp_path / "ec.pem").write_bytes(public_pem(ec.generate_private_key(ec.SECP256R1())))
    for alg, key in (("RS256", "rsa.pem"), ("ES256", "ec.pem")):
        cfg = load_config(write(tmp_path, f'[auth]\nmode = "token"\njwt_algorithm = "{alg}"\njwt_public_key = "{key}"\n'))
        assert cfg.auth.jwt_algorithm == alg
    assert load_config(write(tmp_path, f'[auth]\nmode = "token"\njwt_secret = "{SECRET}"\n')).auth.mode == "token"
