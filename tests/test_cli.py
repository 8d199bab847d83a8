"""The `jitsi-py` command, run as an admin would: a separate process, exit codes and messages."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import aiohttp
import pytest

from xmpp_plugins.users import UserStore

EXAMPLE = Path(__file__).resolve().parent.parent / "conf" / "jitsi-py.toml"
TIMEOUT = 10


@pytest.fixture
def env(tmp_path):
    """The environment for the child: no stray per-user data directory, no buffering surprises."""
    e = dict(os.environ)
    e["HOME"] = str(tmp_path / "home")
    e["XDG_DATA_HOME"] = str(tmp_path / "home" / "data")
    e["PYTHONUNBUFFERED"] = "1"
    return e


def jitsi_py(env, *args, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jitsi_py", *map(str, args)], input=stdin, env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)


def write_config(tmp_path: Path, body: str = "", name: str = "jitsi-py.toml") -> Path:
    path = tmp_path / name
    text = f'[server]\ndata_dir = "{tmp_path / "data"}"\n' + textwrap.dedent(body).lstrip("\n")
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def good(tmp_path) -> Path:
    return write_config(tmp_path, """
        [auth]
        scram_iterations = 4096

        [c2s]
        port = 0

        [components]
        port = 0

        [http]
        port = 0

        [admin]
        port = 0
    """)


@pytest.fixture
def bad(tmp_path) -> Path:
    return write_config(tmp_path, """
        [c2s]
        port = "5222"
    """, name="bad.toml")  # line 4: port


def users(tmp_path) -> UserStore:
    return UserStore(tmp_path / "data" / "users.sqlite3", 4096)


# ---- check-config -----------------------------------------------------------------------------

def test_check_config_accepts_the_example_file(env, tmp_path):
    result = jitsi_py(env, "check-config", EXAMPLE, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{EXAMPLE}: OK"


def test_check_config_accepts_a_good_file(env, good):
    result = jitsi_py(env, "check-config", good)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_config_rejects_a_bad_file(env, bad):
    result = jitsi_py(env, "check-config", bad)
    assert result.returncode == 2
    assert f"{bad}:4: key 'c2s.port': '5222' is not an integer" in result.stderr
    assert "Traceback" not in result.stderr
    assert "OK" not in result.stdout


def test_check_config_reports_every_problem(env, tmp_path):
    path = write_config(tmp_path, """
        domian = "x"
        [http]
        port = 70000
    """)
    result = jitsi_py(env, "check-config", path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"{path}:3: key 'server.domian': unknown key; did you mean 'server.domain'?",
        f"{path}:5: key 'http.port': 70000 is out of range (allowed: 0..65535; 0 picks a free port)",
    ]


def test_check_config_on_a_missing_file(env, tmp_path):
    result = jitsi_py(env, "check-config", tmp_path / "nope.toml")
    assert result.returncode == 2
    assert f"{tmp_path / 'nope.toml'}: cannot read the file" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_on_invalid_toml(env, tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('[server]\ndomain = "localhost"\n[c2s\nport = 1\n')
    result = jitsi_py(env, "check-config", path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}:3: TOML syntax error")
    assert "Traceback" not in result.stderr


# ---- run --------------------------------------------------------------------------------------

def test_run_refuses_a_bad_config(env, bad, tmp_path):
    result = jitsi_py(env, "run", "--config", bad)
    assert result.returncode == 2
    assert f"{bad}:4: key 'c2s.port': '5222' is not an integer" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "data").exists()  # nothing was started or created


async def _read_until(stream: asyncio.StreamReader, pattern: str, seen: list[str]) -> re.Match:
    while True:
        raw = await stream.readline()
        if not raw:
            raise AssertionError(f"output ended before {pattern!r}: {seen}")
        line = raw.decode().rstrip("\n")
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m


async def test_run_listens_and_stops_cleanly_on_sigterm(env, good, tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jitsi_py", "run", "--config", str(good), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        seen: list[str] = []
        c2s = await asyncio.wait_for(_read_until(proc.stdout, r"c2s.*: 127\.0\.0\.1:(\d+)$", seen), TIMEOUT)
        comp = await asyncio.wait_for(_read_until(proc.stdout, r"components.*: 127\.0\.0\.1:(\d+)$", seen), TIMEOUT)
        http = await asyncio.wait_for(_read_until(proc.stdout, r"HTTP: http://127\.0\.0\.1:(\d+)/", seen), TIMEOUT)
        admin = await asyncio.wait_for(_read_until(proc.stdout, r"Admin HTTP.*: http://127\.0\.0\.1:(\d+)/", seen),
                                       TIMEOUT)
        assert any(f"(data in {tmp_path / 'data'})" in line for line in seen), seen
        ports = [int(m.group(1)) for m in (c2s, comp, http, admin)]
        assert all(p > 0 for p in ports) and len(set(ports)) == 4  # port 0 became real, distinct ports

        # It really serves there: an XMPP stream header gets a stream back, BOSH answers over HTTP.
        reader, writer = await asyncio.open_connection("127.0.0.1", ports[0])
        writer.write(b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
                     b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(4096), TIMEOUT)
        assert b"<stream:stream" in reply and b'from="localhost"' in reply
        writer.close()
        async with aiohttp.ClientSession() as http_session:
            async with http_session.get(f"http://127.0.0.1:{ports[2]}/http-bind") as resp:
                assert resp.status == 200
                assert "BOSH" in await resp.text()
            # the bridge's stats answer on the admin port only
            async with http_session.get(f"http://127.0.0.1:{ports[3]}/colibri/stats") as resp:
                assert resp.status == 200 and (await resp.json())["conferences"] == 0
            async with http_session.get(f"http://127.0.0.1:{ports[2]}/colibri/stats") as resp:
                assert resp.status == 404

        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), TIMEOUT)
        stderr = (await proc.stderr.read()).decode()
        assert rc == 0, stderr
        assert "Traceback" not in stderr
        assert (tmp_path / "data" / "users.sqlite3").is_file()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_run_reports_a_port_in_use_without_traceback(env, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path = write_config(tmp_path, f"""
            [c2s]
            port = {port}
            [components]
            port = 0
            [http]
            port = 0
            [admin]
            port = 0
        """)
        result = jitsi_py(env, "run", "--config", path)
    assert result.returncode == 1
    assert "jitsi-py: cannot start:" in result.stderr
    assert "Traceback" not in result.stderr


# ---- user management --------------------------------------------------------------------------

def test_adduser_passwd_deluser(env, good, tmp_path):
    result = jitsi_py(env, "adduser", "alice", "--password-stdin", "--config", good, stdin="first secret\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "added alice@localhost"
    store = users(tmp_path)
    try:
        assert store.exists("alice", "localhost")
        assert store.check_password("alice", "localhost", "first secret")
    finally:
        store.close()

    result = jitsi_py(env, "passwd", "alice", "--password-stdin", "--config", good, stdin="second secret\n")
    assert result.returncode == 0, result.stderr
    assert "alice@localhost" in result.stdout
    store = users(tmp_path)
    try:
        assert store.check_password("alice", "localhost", "second secret")
        assert not store.check_password("alice", "localhost", "first secret")
    finally:
        store.close()

    result = jitsi_py(env, "deluser", "alice", "--config", good)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "deleted alice@localhost"
    store = users(tmp_path)
    try:
        assert not store.exists("alice", "localhost")
    finally:
        store.close()


def test_adduser_with_explicit_host(env, good, tmp_path):
    result = jitsi_py(env, "adduser", "focus@Auth.Localhost", "--password-stdin", "--config", good, stdin="pw\n")
    assert result.returncode == 0, result.stderr
    store = users(tmp_path)
    try:
        assert store.check_password("focus", "auth.localhost", "pw")
        assert not store.exists("focus", "localhost")
    finally:
        store.close()


def test_user_errors_exit_1_with_a_message(env, good, tmp_path):
    ok = jitsi_py(env, "adduser", "alice", "--password-stdin", "--config", good, stdin="pw\n")
    assert ok.returncode == 0, ok.stderr
    cases = [
        (("adduser", "alice", "--password-stdin"), "pw2\n", "already exists"),
        (("passwd", "bob", "--password-stdin"), "pw\n", "bob@localhost does not exist"),
        (("deluser", "bob"), None, "bob@localhost does not exist"),
        (("adduser", "carol", "--password-stdin"), "\n", "The password is empty"),
        (("adduser", "bad/name", "--password-stdin"), "pw\n", "may not contain '/'"),
        (("adduser", "dave", "--password-stdin"), "bell\x07\n", "The password cannot be used"),
    ]
    for args, stdin, message in cases:
        result = jitsi_py(env, *args, "--config", good, stdin=stdin)
        assert result.returncode == 1, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert f"jitsi-py {args[0]}: " in result.stderr
        assert "Traceback" not in result.stderr
    store = users(tmp_path)
    try:
        assert store.check_password("alice", "localhost", "pw")  # unchanged by the failed adduser
        assert not store.exists("carol", "localhost")
        assert not store.exists("dave", "localhost")
    finally:
        store.close()


def test_adduser_refuses_a_bad_config(env, bad, tmp_path):
    result = jitsi_py(env, "adduser", "alice", "--password-stdin", "--config", bad, stdin="pw\n")
    assert result.returncode == 2
    assert f"{bad}:4: key 'c2s.port'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "users.sqlite3").exists()


def test_user_commands_report_an_unusable_data_dir(env, tmp_path):
    (tmp_path / "occupied").write_text("a file, not a directory")
    path = tmp_path / "jitsi-py.toml"
    path.write_text(f'[server]\ndata_dir = "{tmp_path / "occupied" / "data"}"\n')
    result = jitsi_py(env, "adduser", "alice", "--password-stdin", "--config", path, stdin="pw\n")
    assert result.returncode == 1
    assert "jitsi-py adduser: cannot open the user database" in result.stderr
    assert "Traceback" not in result.stderr
