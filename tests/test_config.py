"""The TOML config: the example file, the defaults, and the error messages an admin sees."""
from __future__ import annotations

import dataclasses
import re
import textwrap
from pathlib import Path

import pytest

from jitsi_py.config import (ComponentSecret, Config, ConfigError, Listener, data_dir,
                             load_config)

EXAMPLE = Path(__file__).resolve().parent.parent / "conf" / "jitsi-py.toml"


def write(tmp_path: Path, text: str, name: str = "jitsi-py.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def errors(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


# ---- the example file and the defaults -------------------------------------------------------

def test_example_file_loads_and_equals_the_defaults():
    cfg = load_config(EXAMPLE)
    assert cfg == Config(path=str(EXAMPLE))
    assert cfg.path == str(EXAMPLE)
    assert cfg.server.domain == "localhost"
    assert cfg.server.log_level == "info"
    assert cfg.server.data_dir == ""
    assert (cfg.tls.cert, cfg.tls.key) == ("", "")
    assert (cfg.c2s.listen, cfg.c2s.port, cfg.c2s.enabled) == ("127.0.0.1", 5222, True)
    assert cfg.components.port == 5347
    assert cfg.http.port == 8080
    assert cfg.http.allowed_origins == []
    assert (cfg.admin.listen, cfg.admin.port, cfg.admin.enabled) == ("127.0.0.1", 8088, True)
    assert (cfg.bridge.http_port, cfg.bridge.admin_listen, cfg.bridge.admin_port) == (8081, "127.0.0.1", 8089)
    assert cfg.component == []
    assert cfg.auth.anonymous is True
    assert cfg.limits.stanza_size == 256 * 1024
    assert isinstance(cfg.limits.auth_timeout, float)
    assert cfg.bosh.max_requests == 2
    assert (cfg.turn.host, cfg.turn.port, cfg.turn.tls_port, cfg.turn.turns) == ("", 3478, 5349, True)
    assert (cfg.turn.secret, cfg.turn.credential_lifetime) == ("", 86400)


def _sections_in_example() -> dict[str, set[str]]:
    """Keys the example shows per section, counting commented-out ones (`# key = ...`)."""
    shown: dict[str, set[str]] = {}
    section = ""
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^#?\s*\[\[?\s*([a-z0-9_]+)\s*\]\]?\s*$", line)
        if m:
            section = m.group(1)
            shown.setdefault(section, set())
            continue
        m = re.match(r"^#?\s*([a-z0-9_]+)\s*=", line)
        if m and section:
            shown[section].add(m.group(1))
    return shown


def test_example_file_documents_every_section_and_key():
    shown = _sections_in_example()
    cfg = Config()
    for f in dataclasses.fields(Config):
        if f.name == "path":
            continue
        value = getattr(cfg, f.name)
        section_type = ComponentSecret if f.name == "component" else type(value)
        expected = {k.name for k in dataclasses.fields(section_type)}
        assert f.name in shown, f"section [{f.name}] missing from the example"
        assert shown[f.name] == expected, f"[{f.name}] in the example: {sorted(shown[f.name])}"


def test_example_file_comments_out_unset_settings():
    """Settings that are unset by default are shown, but commented out."""
    text = EXAMPLE.read_text(encoding="utf-8")
    assert re.search(r"^# *cert *=", text, re.M) and re.search(r"^# *key *=", text, re.M)
    assert re.search(r"^# *data_dir *=", text, re.M)
    assert re.search(r"^# *\[\[component\]\]", text, re.M)
    assert not re.search(r"^\[\[component\]\]", text, re.M)


def test_commented_out_example_settings_are_valid(tmp_path):
    # Uncommenting the example's optional settings gives a config whose only problems are the
    # placeholder certificate paths, which do not exist here.
    text = EXAMPLE.read_text(encoding="utf-8")
    text, n = re.subn(r"^# ?((?:\[\[component\]\])|(?:[a-z0-9_]+ = .*))$", r"\1", text, flags=re.M)
    assert n >= 7
    path = write(tmp_path, text)
    err = errors(path)
    assert len(err.problems) == 2, err.problems
    assert "key 'tls.cert': file '/etc/jitsi-py/fullchain.pem' does not exist" in err.problems[0]
    assert "key 'tls.key': file '/etc/jitsi-py/privkey.pem' does not exist" in err.problems[1]


def test_no_file_and_empty_file_are_the_defaults(tmp_path):
    assert load_config(None) == Config()
    path = write(tmp_path, "")
    assert load_config(path) == Config(path=str(path))


def test_values_are_read(tmp_path):
    path = write(tmp_path, """
        [server]
        domain = "meet.example.org"
        log_level = "debug"

        [c2s]
        port = 15222
        enabled = false

        [limits]
        auth_timeout = 5     # an integer is accepted for a number of seconds

        [http]
        allowed_origins = ["https://meet.example.org", "http://[::1]:8080", "*"]

        [admin]
        listen = "10.0.0.5"
        port = 9000

        [[component]]
        domain = "conference.meet.example.org"
        secret = "s1"

        [[component]]
        domain = "focus.meet.example.org"
        secret = "s2"
    """)
    cfg = load_config(path)
    assert cfg.server.domain == "meet.example.org"
    assert cfg.server.log_level == "debug"
    assert cfg.c2s == Listener(listen="127.0.0.1", port=15222, enabled=False)
    assert cfg.limits.auth_timeout == 5.0 and isinstance(cfg.limits.auth_timeout, float)
    assert cfg.component == [ComponentSecret("conference.meet.example.org", "s1"),
                             ComponentSecret("focus.meet.example.org", "s2")]
    assert cfg.http.allowed_origins == ["https://meet.example.org", "http://[::1]:8080", "*"]
    assert cfg.admin == Listener(listen="10.0.0.5", port=9000, enabled=True)
    assert cfg.http.port == 8080  # untouched sections keep their defaults


def test_relative_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "cert.pem").write_text("cert")
    (conf / "key.pem").write_text("key")
    path = write(conf, """
        [server]
        data_dir = "state"
        [tls]
        cert = "cert.pem"
        key = "key.pem"
    """)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(path)
    assert cfg.tls.cert == "cert.pem"
    assert data_dir(cfg) == conf / "state"
    assert (conf / "state").is_dir()
    assert not (elsewhere / "state").exists()


# ---- one mistake each --------------------------------------------------------------------------

MISTAKES = [
    pytest.param("""
        [server]
        domain = "localhost"
        domian = "meet.example.org"
     """, 3, "server.domian", ["unknown key", "did you mean 'server.domain'"], id="typo-key"),
    pytest.param("""
        [server]
        colour = "blue"
     """, 2, "server.colour", ["unknown key", "allowed: domain, data_dir, log_level"], id="unknown-key"),
    pytest.param("""
        [server]
        domain = "localhost"

        [sever]
        log_level = "debug"
     """, 4, "sever", ["unknown section", "did you mean 'server'"], id="typo-section"),
    pytest.param("""
        [video]
        codec = "vp8"
     """, 1, "video", ["unknown section", "allowed:", "server", "limits"], id="unknown-section"),
    pytest.param("""
        [c2s]
        listen = "127.0.0.1"
        port = "5222"
     """, 3, "c2s.port", ["'5222' is not an integer"], id="port-string"),
    pytest.param("""
        [auth]
        anonymous = "yes"
     """, 2, "auth.anonymous", ["is not true or false"], id="bool-string"),
    pytest.param("""
        [http]
        port = 70000
     """, 2, "http.port", ["70000 is out of range", "0..65535"], id="port-range"),
    pytest.param("""
        [admin]
        port = 65536
     """, 2, "admin.port", ["65536 is out of range", "0..65535"], id="admin-port-range"),
    pytest.param("""
        [bridge]
        admin_port = 70000
     """, 2, "bridge.admin_port", ["70000 is out of range", "0..65535"], id="bridge-admin-port-range"),
    pytest.param("""
        [http]
        port = 8080
        allowed_origins = ["https://meet.example.org", "meet.example.org/path"]
     """, 3, "http.allowed_origins[1]", ["'meet.example.org/path' is not an origin",
                                         "scheme://host[:port]"], id="allowed-origin"),
    pytest.param("""
        [http]
        allowed_origins = "https://meet.example.org"
     """, 2, "http.allowed_origins", ["must be an array of strings"], id="allowed-origins-not-list"),
    pytest.param("""
        [components]
        port = -1
     """, 2, "components.port", ["out of range", "0..65535"], id="port-negative"),
    pytest.param("""
        [server]
        log_level = "verbose"
     """, 2, "server.log_level", ["'verbose' is not allowed", "debug, info, warning, error"], id="log-level"),
    pytest.param("""
        [server]
        domain = "meet example"
     """, 2, "server.domain", ["not a valid domain name"], id="domain"),
    pytest.param("""
        [limits]
        max_depth = -5
     """, 2, "limits.max_depth", ["must not be negative"], id="negative-limit"),
    pytest.param("""
        [limits]
        auth_timeout = 0
     """, 2, "limits.auth_timeout", ["must be more than 0 seconds"], id="auth-timeout-zero"),
    pytest.param("""
        [limits]
        c2s_stanza_rate = 20
        c2s_stanza_burst = 0
     """, 3, "limits.c2s_stanza_burst", ["must be more than 0 while limits.c2s_stanza_rate is on"],
                 id="rate-without-burst"),
    pytest.param("""
        [auth]
        scram_iterations = 1000
     """, 2, "auth.scram_iterations", ["1000 is too low", "4096 or more"], id="scram-iterations"),
    pytest.param("""
        server = "localhost"
     """, 1, "server", ["must be a table [server]"], id="section-not-table"),
    pytest.param("""
        [bridge]
        media_address = "127.0.0.1"
        public_address = "meet.example.org"
     """, 3, "bridge.public_address", ["'meet.example.org' is not an IP address"], id="public-address"),
    pytest.param("""
        [bridge]
        stun = "stun.example.org:x"
     """, 2, "bridge.stun", ["'stun.example.org:x' is not host:port"], id="bridge-stun"),
    pytest.param("""
        [bridge]
        port_min = 20000
        port_max = 10000
     """, 2, "bridge.port_min", ["20000..10000 is not a port range", "port_min <= port_max"], id="media-ports"),
    pytest.param("""
        [component]
        domain = "conference.localhost"
        secret = "x"
     """, 1, "component", ["must be an array of tables [[component]]"], id="component-single-brackets"),
    pytest.param("""
        [muc]
        create_rooms = "admins"
        reserved_nicks = ["focus", "  "]
     """, 3, "muc.reserved_nicks[1]", ["is not a nick"], id="reserved-nick-blank"),
    pytest.param("""
        [turn]
        host = "turn.example.org"
     """, 1, "turn.secret", ["required when turn.host is set"], id="turn-without-secret"),
    pytest.param("""
        [turn]
        host = "turn.example.org"
        secret = "short"
     """, 3, "turn.secret", ["too short", "16 or more"], id="turn-short-secret"),
    pytest.param("""
        [turn]
        host = "turn example"
        secret = "0123456789abcdef0123"
     """, 2, "turn.host", ["is not a host name or IP address"], id="turn-bad-host"),
    pytest.param("""
        [turn]
        tls_port = 0
     """, 2, "turn.tls_port", ["0 is out of range", "1..65535"], id="turn-port-zero"),
    pytest.param("""
        [turn]
        credential_lifetime = 0
     """, 2, "turn.credential_lifetime", ["must be more than 0 seconds"], id="turn-lifetime"),
    pytest.param("""
        [turn]
        host = "192.0.2.1"
        secret = "0123456789abcdef0123"
        port = 3478
        tls_port = 3478
     """, 5, "turn.tls_port", ["TLS needs a port of its own"], id="turn-same-ports"),
]


@pytest.mark.parametrize("text, line, key, fragments", MISTAKES)
def test_each_mistake_names_file_line_key_and_what_is_allowed(tmp_path, text, line, key, fragments):
    path = write(tmp_path, text)
    err = errors(path)
    assert len(err.problems) == 1, err.problems
    message = str(err)
    assert message.startswith(f"{path}:{line}: key '{key}': "), message
    for fragment in fragments:
        assert fragment in message


def test_missing_tls_cert_file(tmp_path):
    (tmp_path / "key.pem").write_text("key")
    path = write(tmp_path, """
        [tls]
        cert = "nowhere/cert.pem"
        key = "key.pem"
    """)
    err = errors(path)
    assert err.problems == [f"{path}:2: key 'tls.cert': file 'nowhere/cert.pem' does not exist"]


def test_tls_cert_without_key(tmp_path):
    (tmp_path / "cert.pem").write_text("cert")
    path = write(tmp_path, """
        [server]
        domain = "localhost"

        [tls]
        cert = "cert.pem"
    """)
    err = errors(path)
    # The key is absent, so the [tls] table's line is the one named.
    assert err.problems == [f"{path}:4: key 'tls.key': set both tls.cert and tls.key, or neither"]


def test_tls_key_without_cert(tmp_path):
    (tmp_path / "key.pem").write_text("key")
    path = write(tmp_path, """
        [tls]
        key = "key.pem"
    """)
    assert str(errors(path)) == f"{path}:1: key 'tls.cert': set both tls.cert and tls.key, or neither"


def test_component_without_secret(tmp_path):
    path = write(tmp_path, """
        [[component]]
        domain = "conference.localhost"
        secret = "ok"

        [[component]]
        domain = "focus.localhost"
    """)
    err = errors(path)
    assert err.problems == [f"{path}:5: key 'component[1]': missing 'secret'"]


def test_components_without_domain_are_not_duplicates(tmp_path):
    path = write(tmp_path, """
        [[component]]
        secret = "a"

        [[component]]
        secret = "b"
    """)
    assert errors(path).problems == [f"{path}:1: key 'component[0]': missing 'domain'",
                                     f"{path}:4: key 'component[1]': missing 'domain'"]


def test_component_with_unknown_key(tmp_path):
    path = write(tmp_path, """
        [[component]]
        domain = "conference.localhost"
        secrett = "x"
    """)
    message = str(errors(path))
    assert f"{path}:3: key 'component[0].secrett': unknown key; did you mean 'component[0].secret'?" in message
    assert f"{path}:1: key 'component[0]': missing 'secret'" in message


def test_component_duplicate_domain(tmp_path):
    path = write(tmp_path, """
        [[component]]
        domain = "conference.localhost"
        secret = "a"

        [[component]]
        domain = "Conference.localhost"
        secret = "b"
    """)
    err = errors(path)
    assert err.problems == [
        f"{path}:6: key 'component[1].domain': 'Conference.localhost' is configured twice"]


def test_invalid_toml_reports_the_line(tmp_path):
    path = write(tmp_path, """
        [server]
        domain = "localhost"
        log_level "debug"
    """)
    err = errors(path)
    assert len(err.problems) == 1
    assert err.problems[0].startswith(f"{path}:3: TOML syntax error: ")


def test_unterminated_string_reports_the_line(tmp_path):
    path = write(tmp_path, """
        [server]

        domain = "localhost
    """)
    assert str(errors(path)).startswith(f"{path}:3: TOML syntax error")


def test_missing_file_is_a_config_error(tmp_path):
    path = tmp_path / "absent.toml"
    message = str(errors(path))
    assert message.startswith(f"{path}: cannot read the file")


def test_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[server]\ndomain = "caf\xe9"\n')
    assert str(errors(path)).startswith(f"{path}: not UTF-8 text")


def test_several_problems_are_all_reported(tmp_path):
    path = write(tmp_path, """
        [server]
        domian = "meet.example.org"
        log_level = "loud"

        [c2s]
        port = "5222"

        [http]
        port = 70000

        [tls]
        cert = "missing.pem"

        [[component]]
        domain = "conference.localhost"
    """)
    err = errors(path)
    expected = {
        (2, "server.domian"), (3, "server.log_level"), (6, "c2s.port"), (9, "http.port"),
        (12, "tls.cert"), (11, "tls.key"), (14, "component[0]"),
    }
    found = set()
    for problem in err.problems:
        m = re.match(re.escape(str(path)) + r":(\d+): key '([^']+)': ", problem)
        assert m, problem
        found.add((int(m.group(1)), m.group(2)))
    assert found == expected
    assert len(err.problems) == len(expected)
    assert str(err).count("\n") == len(expected) - 1  # one line per problem
