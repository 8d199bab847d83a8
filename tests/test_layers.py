"""The import graph is a clean stack of layers (docs/architecture.md, "Layers"): a package imports
only packages of lower layers, so no cycle can form between packages and the picture in the
docs cannot drift. Every import counts, also those inside functions and under TYPE_CHECKING.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# unit -> layer; a module belongs to the longest unit its dotted name starts with
LAYERS: dict[str, int] = {
    "jitsi_base": 0,          # config loading, process helpers, namespaces, errors, rates
    "xmpp_wire": 1,           # XMPP streams, stanzas, the XEP-0114 client
    "jitsi_protocols": 1,     # Jingle, COLIBRI2, focus IQ, SDP, models
    "xmpp_plugins": 2,        # the XMPP server and the MUC
    "jicofo_py": 2,           # the focus
    "bridge": 2,              # the SFU
    "webclient": 2,           # the browser client
    "jitsi_py.participant": 2,  # the Python participant
    "jitsi_py": 3,            # the all-in-one stack and the CLI
    "loadgen": 4,             # load generation for tests and benches, never installed
}
# Process entry points (`python -m bridge`) read the whole config file, whose schema is put
# together at the top: they are top-layer code that lives beside the package it starts.
ENTRY_POINT_LAYER = 3
# Within a layer, packages are independent too; besides, the server core does not depend on
# the conference protocols it routes without reading.
FORBIDDEN = {("xmpp_plugins", "jitsi_protocols")}


def unit_of(module: str) -> str | None:
    best = None
    for unit in LAYERS:
        if (module == unit or module.startswith(unit + ".")) and (best is None or len(unit) > len(best)):
            best = unit
    return best


def layer_of(module: str) -> int | None:
    if module.endswith(".__main__") and unit_of(module) is not None:
        return ENTRY_POINT_LAYER
    unit = unit_of(module)
    return LAYERS[unit] if unit is not None else None


def modules() -> dict[str, Path]:
    found = {}
    for top in {u.split(".")[0] for u in LAYERS}:
        for path in (ROOT / top).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_pkg else base[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((target, node.lineno))
            if node.module is None or node.level:  # `from . import x`: x may be a module
                out += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
    return out


def violations() -> list[str]:
    found = []
    for module, path in sorted(modules().items()):
        mine, my_unit = layer_of(module), unit_of(module)
        for target, line in imports(module, path):
            their_unit = unit_of(target)
            if their_unit is None or their_unit == my_unit:
                continue
            theirs = layer_of(target)
            shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            where = f"{shown}:{line}: {module} imports {target}"
            if mine is not None and theirs is not None and theirs >= mine and not module.endswith(".__main__"):
                found.append(f"{where} (layer {theirs} from layer {mine})")
            elif (my_unit, their_unit) in FORBIDDEN:
                found.append(f"{where} (the server core must not depend on {their_unit})")
    return found


def test_packages_import_only_lower_layers():
    assert violations() == []


def test_every_package_is_in_a_layer():
    """A new top-level package must be placed in LAYERS (and in docs/architecture.md)."""
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert packages - {u.split(".")[0] for u in LAYERS} == set()


@pytest.mark.parametrize("module,target,expected", [
    ("xmpp_plugins.router", "jicofo_py.focus", True),      # a component importing a sibling
    ("jitsi_base.config", "jitsi_py.config", True),         # the base importing the top
    ("xmpp_plugins.server", "jitsi_protocols.jingle", True),  # server core and conference protocols
    ("bridge.bridge", "jitsi_protocols.model", False),
    ("jitsi_py.stack", "bridge.bridge", False),
])
def test_the_guard_sees_a_violation(tmp_path, monkeypatch, module, target, expected):
    """The checker itself: a planted import is reported (or not) as the layers say."""
    path = tmp_path / "m.py"
    path.write_text(f"import {target}\n")
    monkeypatch.setattr(__import__(__name__), "modules", lambda: {module: path})
    assert bool(violations()) is expected
