"""Reading an admin's TOML file into typed dataclass sections, with errors that name the file,
the line and the dotted key and say what is allowed: admins edit these files by hand, and a
traceback tells them nothing.

Each component owns its section(s) and their checks (`xmpp_plugins/config.py`,
`bridge/config.py`, `jicofo_py/config.py`); the all-in-one file is assembled from them in
`jitsi_py/config.py`. This module knows none of them.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
import typing
from pathlib import Path
from typing import Callable, TypeVar

__all__ = ["ConfigError", "Problems", "load", "check_port"]

# (dotted key, what is wrong) pairs a check appends to
Problems = list[tuple[str, str]]
T = TypeVar("T")


class ConfigError(Exception):
    """All problems found in one file, one line each: `FILE:LINE: key 'a.b': what is wrong`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _KeyLines:
    """Line numbers of keys in a hand-written TOML file (tomllib gives none)."""

    _table = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\s\"]+?)\s*\]\]?\s*(#.*)?$")
    _key = re.compile(r"^\s*([A-Za-z0-9_\-\"]+(?:\s*\.\s*[A-Za-z0-9_\-\"]+)*)\s*=")

    def __init__(self, text: str) -> None:
        self.lines: dict[str, int] = {}
        table = ""
        counts: dict[str, int] = {}
        for number, line in enumerate(text.splitlines(), 1):
            m = self._table.match(line)
            if m:
                name = m.group(2).replace('"', "").replace(" ", "")
                if m.group(1) == "[[":
                    index = counts.get(name, 0)
                    counts[name] = index + 1
                    name = f"{name}[{index}]"
                table = name
                self.lines.setdefault(table, number)
                continue
            m = self._key.match(line)
            if m:
                key = m.group(1).replace('"', "").replace(" ", "")
                self.lines.setdefault(f"{table}.{key}" if table else key, number)

    def line(self, dotted: str) -> int:
        while dotted:
            if dotted in self.lines:
                return self.lines[dotted]
            plain = re.sub(r"\[\d+\]$", "", dotted)  # an array's entry: the array's line
            if plain != dotted and plain in self.lines:
                return self.lines[plain]
            dotted = dotted.rpartition(".")[0]
        return 1


def _type_name(tp: object) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(tp, str(tp))  # type: ignore[arg-type]


def _fill(obj: object, data: dict, prefix: str, problems: Problems) -> None:
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj) if f.name != "path"]  # type: ignore[arg-type]
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f" (allowed: {', '.join(names)})"
            problems.append((dotted, f"unknown {'section' if isinstance(value, dict) else 'key'}{hint}"))
            continue
        tp = hints[key]
        origin = typing.get_origin(tp)
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                problems.append((dotted, f"must be a table [{dotted}]"))
                continue
            _fill(getattr(obj, key), value, dotted + ".", problems)
        elif origin is list and typing.get_args(tp)[0] is str:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append((dotted, "must be an array of strings"))
                continue
            setattr(obj, key, list(value))
        elif origin is list:
            (item_tp,) = typing.get_args(tp)
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                problems.append((dotted, f"must be an array of tables [[{dotted}]]"))
                continue
            items = []
            for i, entry in enumerate(value):
                item = item_tp()
                _fill(item, entry, f"{dotted}[{i}].", problems)
                items.append(item)
            setattr(obj, key, items)
        else:
            ok = (isinstance(value, bool) if tp is bool else
                  isinstance(value, int) and not isinstance(value, bool) if tp is int else
                  isinstance(value, (int, float)) and not isinstance(value, bool) if tp is float else
                  isinstance(value, tp))  # type: ignore[arg-type]
            if not ok:
                problems.append((dotted, f"{value!r} is not {_type_name(tp)}"))
                continue
            setattr(obj, key, float(value) if tp is float else value)


def check_port(problems: Problems, key: str, port: int, allow_zero: bool = True) -> None:
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        hint = "0..65535; 0 picks a free port" if allow_zero else "1..65535"
        problems.append((key, f"{port} is out of range (allowed: {hint})"))


def load(path: str | os.PathLike, make: Callable[[str], T], check: Callable[[T, Path, Problems], None]) -> T:
    """`make(path)` filled from the file at `path` and checked; raises ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text ({exc.reason})"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        where = f"{path}:{m.group(1)}" if m else str(path)
        raise ConfigError([f"{where}: TOML syntax error: {str(exc).split(' (at line')[0]}"]) from None
    cfg = make(str(path))
    problems: Problems = []
    _fill(cfg, data, "", problems)
    check(cfg, path.resolve().parent, problems)
    if problems:
        lines = _KeyLines(text)
        raise ConfigError([f"{path}:{lines.line(key)}: key '{key}': {what}" for key, what in problems])
    return cfg
