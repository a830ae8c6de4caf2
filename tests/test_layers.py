"""The project's imports point one way (docs/architecture.md#layers): the protocol package
at the bottom, the shared library above it, then accounts, orders, payments and
reconciliation, each importing only what lies below it, and the wiring (wxrecharge) on top.
The WeChat sandbox (devtools/) lies outside the product. Read from the source (every import,
those inside functions too), not from what happens to be loaded."""

from __future__ import annotations

import ast
import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Each layer, and what it may import of the project besides itself.
LAYERS = {
    "wxproto": set(),
    "common": {"wxproto"},
    # The operators' audit log: written by every app's operator actions, importing none.
    "audit": {"wxproto", "common"},
    # The transactional outbox: the books write events into it; it knows no app.
    "outbox": {"wxproto", "common", "audit"},
    "accounts": {"wxproto", "common", "audit"},
    # Recharge offers (packages, bonus tiers): what is offered, below the orders that record it.
    "offers": {"wxproto", "common", "audit", "accounts"},
    "orders": {"wxproto", "common", "audit", "outbox", "accounts", "offers"},
    "payments": {"wxproto", "common", "audit", "outbox", "accounts", "offers", "orders"},
    "reconciliation": {"wxproto", "common", "audit", "outbox", "accounts", "offers", "orders", "payments"},
    # The wallet spends what orders hold; it needs nothing of payments or reconciliation.
    "wallet": {"wxproto", "common", "audit", "outbox", "accounts", "offers", "orders"},
    # Messages to members (and shipping records) from the outbox's events: above the books they
    # tell of, beside payments and the wallet.
    "messaging": {"wxproto", "common", "audit", "outbox", "accounts", "offers", "orders"},
    # The operators' health panel and alerts: reads the books, WeChat's answers and the outbox.
    # Other apps register their checks in common.health, never importing it.
    "health": {"wxproto", "common", "audit", "outbox", "accounts", "offers", "orders", "payments"},
    "wxrecharge": {
        "wxproto",
        "common",
        "audit",
        "outbox",
        "accounts",
        "offers",
        "orders",
        "payments",
        "reconciliation",
        "wallet",
        "messaging",
        "health",
    },
    # The WeChat stand-in is outside the product: it speaks the protocol and uses the shared
    # library, never the product's apps, and no product code imports it.
    "devtools": {"wxproto", "common"},
}
# The sandbox's settings and URLs put it on top of the product (the development wiring): they
# may import every layer, and no layer imports them.
DEVTOOLS_WIRING = {"devtools.settings", "devtools.urls"}
DJANGO_FREE = {"wxproto"}


def modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


@functools.cache
def parsed(path: Path) -> ast.Module:
    """A file's syntax tree, parsed once per process for the several tests that read it (each
    parse of every module cost a second or more)."""
    return ast.parse(path.read_text(encoding="utf-8"))


def imports(path: Path, name: str) -> set[str]:
    """Every module a file imports, wherever the import stands (a function's body included)."""
    tree = parsed(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base]) if base else ".".join(parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {m for m in imports(path, name) if m in known and m != name} for name, path in known.items()}


def test_each_layer_imports_only_what_lies_below_it():
    known = modules()
    wrong = []
    for name, path in known.items():
        layer = name.split(".")[0]
        allowed = set(LAYERS) if name in DEVTOOLS_WIRING else LAYERS[layer]
        for module in imports(path, name):
            top = module.split(".")[0]
            if top in LAYERS and top != layer and top not in allowed:
                wrong.append(f"{path.relative_to(ROOT)} imports {module}")
            if layer in DJANGO_FREE and top in {"django", "wechatpy"}:
                wrong.append(f"{path.relative_to(ROOT)} imports {module}, but {layer} is free of Django")
    assert wrong == []


def test_no_app_imports_the_wiring():
    """Apps reach shared code through `common`; only the wiring (and the sandbox's, on top of
    it) imports the apps."""
    wrong = [
        f"{name} imports {module}"
        for name, targets in graph().items()
        if not name.startswith("wxrecharge") and name not in DEVTOOLS_WIRING
        for module in targets
        if module.startswith("wxrecharge")
    ]
    assert wrong == []


def test_no_layer_imports_the_sandbox_settings_or_urls():
    wrong = [
        f"{name} imports {module}"
        for name, targets in graph().items()
        if name not in DEVTOOLS_WIRING
        for module in targets
        if module in DEVTOOLS_WIRING
    ]
    assert wrong == []


def test_the_production_settings_import_no_devtools_module():
    """wxrecharge/settings.py never loads the sandbox, in debug or not (docs/architecture.md#where-the-sandbox-sits)."""
    script = "import wxrecharge.settings, sys; print(sorted(m for m in sys.modules if m.startswith(('devtools', 'sandbox'))))"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WECHAT_", "DATABASE_"))}
    env.update(DJANGO_SETTINGS_MODULE="wxrecharge.settings", DJANGO_DEBUG="1")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import circles (strongly connected components of more than one module, or a module
    importing itself), by Tarjan's algorithm."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_there_is_no_import_circle_outside_the_sandbox():
    circles = [circle for circle in _cycles(graph()) if not all(m.startswith("devtools.wechat_sandbox") for m in circle)]
    assert circles == []


@pytest.mark.parametrize("edges", [{"a": {"b"}, "b": {"c"}, "c": {"a"}}, {"a": {"b"}, "b": {"a"}, "c": set()}])
def test_a_circle_is_found(edges):
    assert _cycles(edges) and all(len(circle) > 1 for circle in _cycles(edges))


def test_a_tree_has_no_circle():
    assert _cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_wechatpy_is_used_through_its_public_api_only():
    """No product module subclasses a wechatpy class, imports a private name of it, or reaches
    into wechatpy's private attributes (`._http`, `._request`, `._handle_result`)."""
    offences = []
    for name, path in modules().items():
        if name.startswith("devtools"):
            continue
        tree = parsed(path)
        wechatpy_names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("wechatpy"):
                for alias in node.names:
                    wechatpy_names.add(alias.asname or alias.name)
                    if alias.name.startswith("_"):
                        offences.append(f"{name} imports wechatpy's private {alias.name}")
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    if isinstance(base, ast.Name) and base.id in wechatpy_names:
                        offences.append(f"{name}.{node.name} subclasses wechatpy's {base.id}")
            if wechatpy_names and isinstance(node, ast.Attribute) and node.attr in {"_http", "_request", "_handle_result"}:
                offences.append(f"{name} line {node.lineno} reaches .{node.attr}")
    assert not offences
