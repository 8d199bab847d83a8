"""The SQLite user store: accounts kept only as SCRAM credentials."""
from __future__ import annotations

import stat

import pytest
import scramp

from xmpp_plugins.users import (MECHANISMS, UserError, UserExists, UserNotFound, UserStore,
                                normalize_username)

HOST = "localhost"
PASSWORD = "Correct-Horse-Battery-Staple-7f3a"


@pytest.fixture
def store(tmp_path):
    s = UserStore(tmp_path / "data" / "users.sqlite3", iterations=4096)
    yield s
    s.close()


def test_add_then_exists_and_check_password(store):
    assert not store.exists("alice", HOST)
    store.add("alice", HOST, PASSWORD)
    assert store.exists("alice", HOST)
    assert store.check_password("alice", HOST, PASSWORD)


def test_wrong_password_and_unknown_user_are_refused(store):
    store.add("alice", HOST, PASSWORD)
    assert not store.check_password("alice", HOST, PASSWORD + "x")
    assert not store.check_password("alice", HOST, PASSWORD.lower())
    assert not store.check_password("alice", HOST, "")
    assert not store.check_password("bob", HOST, PASSWORD)


def test_names_are_case_insensitive_and_hosts_separate(store):
    store.add("Alice", "LocalHost", PASSWORD)
    assert store.exists("ALICE", HOST)
    assert store.check_password("alice", HOST, PASSWORD)
    assert not store.exists("alice", "example.org")
    assert not store.check_password("alice", "example.org", PASSWORD)
    store.add("alice", "example.org", "other")  # same name on another host: another account
    assert store.check_password("alice", "example.org", "other")
    assert not store.check_password("alice", HOST, "other")


def test_duplicate_add_raises_user_exists(store):
    store.add("alice", HOST, PASSWORD)
    with pytest.raises(UserExists):
        store.add("alice", HOST, "another")
    with pytest.raises(UserExists):
        store.add("ALICE", HOST, "another")
    assert store.check_password("alice", HOST, PASSWORD)  # the first password still stands
    assert issubclass(UserExists, UserError)


def test_set_password(store):
    store.add("alice", HOST, PASSWORD)
    store.set_password("alice", HOST, "new secret")
    assert store.check_password("alice", HOST, "new secret")
    assert not store.check_password("alice", HOST, PASSWORD)


def test_delete(store):
    store.add("alice", HOST, PASSWORD)
    store.add("bob", HOST, PASSWORD)
    store.delete("alice", HOST)
    assert not store.exists("alice", HOST)
    assert not store.check_password("alice", HOST, PASSWORD)
    assert all(store.scram_credentials("alice", HOST, m) is None for m in MECHANISMS)
    assert store.exists("bob", HOST)
    store.add("alice", HOST, "again")  # the name is free again
    assert store.check_password("alice", HOST, "again")


def test_unknown_user_raises_user_not_found(store):
    with pytest.raises(UserNotFound):
        store.set_password("nobody", HOST, PASSWORD)
    with pytest.raises(UserNotFound):
        store.delete("nobody", HOST)
    assert not store.exists("nobody", HOST)  # set_password did not create it
    assert issubclass(UserNotFound, UserError)


def test_accounts_survive_reopening(tmp_path):
    path = tmp_path / "users.sqlite3"
    s = UserStore(path, iterations=4096)
    s.add("alice", HOST, PASSWORD)
    s.close()
    s = UserStore(path, iterations=4096)
    try:
        assert s.exists("alice", HOST)
        assert s.check_password("alice", HOST, PASSWORD)
    finally:
        s.close()


def test_database_file_never_holds_the_password(tmp_path, store):
    store.add("alice", HOST, PASSWORD)
    store.set_password("alice", HOST, PASSWORD + "-2")
    store.add("bob", HOST, "bobs-very-own-passphrase")
    store.close()
    files = [p for p in (tmp_path / "data").iterdir() if p.is_file()]
    assert store.path in files
    data = b"".join(p.read_bytes() for p in files)
    assert b"alice" in data  # the file does hold the accounts...
    for secret in (PASSWORD, PASSWORD + "-2", "bobs-very-own-passphrase"):
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            assert secret.encode(encoding) not in data  # ...but no password in any form


def test_database_file_is_private(store):
    store.add("alice", HOST, PASSWORD)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_stored_credentials_work_for_a_real_scram_exchange(store):
    store.add("alice", HOST, PASSWORD)
    for mech in MECHANISMS:
        creds = store.scram_credentials("alice", HOST, mech)
        assert creds is not None and creds[3] == 4096
        server = scramp.ScramMechanism(mech).make_server(lambda _user, c=creds: c)
        client = scramp.ScramClient([mech], "alice", PASSWORD)
        server.set_client_first(client.get_client_first())
        client.set_server_first(server.get_server_first())
        server.set_client_final(client.get_client_final())
        client.set_server_final(server.get_server_final())  # raises unless the server proved the key

        wrong = scramp.ScramClient([mech], "alice", "wrong")
        server = scramp.ScramMechanism(mech).make_server(lambda _user, c=creds: c)
        server.set_client_first(wrong.get_client_first())
        wrong.set_server_first(server.get_server_first())
        with pytest.raises(scramp.ScramException):
            server.set_client_final(wrong.get_client_final())


@pytest.mark.parametrize("name", ["", "a@b", "a b", "tab\tname", "a/b", "a:b", "a<b", "a>b",
                                  "a&b", "a'b", 'a"b', "x" * 1024])
def test_invalid_usernames_are_rejected(store, name):
    with pytest.raises(UserError):
        normalize_username(name)
    with pytest.raises(UserError):
        store.add(name, HOST, PASSWORD)
    assert store.db.execute("SELECT COUNT(*) FROM credentials").fetchone()[0] == 0


def test_username_normalization():
    assert normalize_username("ALICE") == "alice"
    assert normalize_username("ｂｏｂ") == "bob"  # fullwidth letters fold (NFKC)
    assert normalize_username("Straße") == "strasse"
    assert normalize_username("x" * 1023) == "x" * 1023


@pytest.mark.parametrize("password", ["bell\x07", "nul\x00", "surrogate\udcff"])
def test_passwords_saslprep_refuses_are_a_user_error(store, password):
    with pytest.raises(UserError, match="The password cannot be used"):
        store.add("alice", HOST, password)
    assert not store.exists("alice", HOST)
    store.add("alice", HOST, PASSWORD)
    with pytest.raises(UserError, match="The password cannot be used"):
        store.set_password("alice", HOST, password)
    assert store.check_password("alice", HOST, PASSWORD)
