"""Registered accounts, in SQLite, stored only as SCRAM credentials.

The server never needs a password back: SCRAM-SHA-1/-256 use the stored and server keys, and
PLAIN is checked by deriving the same keys from the offered password. A leaked database thus
gives an attacker no password to reuse elsewhere.
"""
from __future__ import annotations

import hmac
import os
import sqlite3
import unicodedata
from pathlib import Path

import scramp

MECHANISMS = ("SCRAM-SHA-1", "SCRAM-SHA-256")
_FORBIDDEN = set("\"&'/:<>@")


class UserError(Exception):
    pass


class UserExists(UserError):
    pass


class UserNotFound(UserError):
    pass


def normalize_username(username: str) -> str:
    name = unicodedata.normalize("NFKC", username).casefold()
    if not name:
        raise UserError("The user name is empty")
    if len(name.encode()) > 1023:
        raise UserError("The user name is longer than 1023 bytes")
    bad = sorted({c for c in name if c in _FORBIDDEN or c.isspace()})
    if bad:
        raise UserError(f"The user name may not contain {' '.join(repr(c) for c in bad)}")
    return name


class UserStore:
    def __init__(self, db_path: str | os.PathLike, iterations: int = 10000) -> None:
        self.path = Path(db_path)
        self.iterations = iterations
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path))
        os.chmod(self.path, 0o600)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS credentials (username TEXT NOT NULL, host TEXT NOT NULL,"
            " mechanism TEXT NOT NULL, salt BLOB NOT NULL, stored_key BLOB NOT NULL,"
            " server_key BLOB NOT NULL, iterations INTEGER NOT NULL,"
            " PRIMARY KEY (username, host, mechanism))")
        self.db.commit()

    def _rows(self, username: str, host: str, password: str) -> list[tuple]:
        rows = []
        for mech in MECHANISMS:
            try:
                salt, stored, server, iters = scramp.ScramMechanism(mech).make_auth_info(
                    password, iteration_count=self.iterations)
            except scramp.ScramException as exc:  # SASLprep refused it (control characters...)
                raise UserError(f"The password cannot be used: {exc.args[0]}") from None
            rows.append((username, host, mech, salt, stored, server, iters))
        return rows

    def exists(self, username: str, host: str) -> bool:
        name = normalize_username(username)
        cur = self.db.execute("SELECT 1 FROM credentials WHERE username=? AND host=? LIMIT 1",
                              (name, host.lower()))
        return cur.fetchone() is not None

    def add(self, username: str, host: str, password: str) -> None:
        name = normalize_username(username)
        if self.exists(name, host):
            raise UserExists(f"{name}@{host.lower()} already exists")
        self.db.executemany("INSERT INTO credentials VALUES (?,?,?,?,?,?,?)",
                            self._rows(name, host.lower(), password))
        self.db.commit()

    def set_password(self, username: str, host: str, password: str) -> None:
        name = normalize_username(username)
        if not self.exists(name, host):
            raise UserNotFound(f"{name}@{host.lower()} does not exist")
        self.db.executemany("INSERT OR REPLACE INTO credentials VALUES (?,?,?,?,?,?,?)",
                            self._rows(name, host.lower(), password))
        self.db.commit()

    def delete(self, username: str, host: str) -> None:
        name = normalize_username(username)
        if not self.exists(name, host):
            raise UserNotFound(f"{name}@{host.lower()} does not exist")
        self.db.execute("DELETE FROM credentials WHERE username=? AND host=?", (name, host.lower()))
        self.db.commit()

    def scram_credentials(self, username: str, host: str, mechanism: str) -> tuple[bytes, bytes, bytes, int] | None:
        name = normalize_username(username)
        cur = self.db.execute(
            "SELECT salt, stored_key, server_key, iterations FROM credentials"
            " WHERE username=? AND host=? AND mechanism=?", (name, host.lower(), mechanism))
        row = cur.fetchone()
        return (bytes(row[0]), bytes(row[1]), bytes(row[2]), int(row[3])) if row else None

    def check_password(self, username: str, host: str, password: str) -> bool:
        creds = self.scram_credentials(username, host, "SCRAM-SHA-256")
        if creds is None:
            return False
        salt, stored_key, _server_key, iterations = creds
        try:  # the same derivation (and SASLprep) as SCRAM, so both paths accept the same passwords
            _s, derived, _k, _i = scramp.ScramMechanism("SCRAM-SHA-256").make_auth_info(
                password, iteration_count=iterations, salt=salt)
        except Exception:
            return False
        return hmac.compare_digest(derived, stored_key)

    def close(self) -> None:
        self.db.close()
