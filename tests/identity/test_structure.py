"""The shape of ``shared/identity`` (issue 7, item 9; ADR 0010 "Package layout").

* One owner per Firestore collection: only the owner module names the collection (a
  ``.collection(...)`` call or a module constant holding its name); every other module reaches
  it through the owner's functions.
* No import cycle between identity modules, counting imports inside functions too (a lazy
  import hides a cycle from the interpreter, not from the design).
* Sub-package ``__init__`` files import nothing, so importing one module never drags in a
  sibling (and cannot hide a cycle).

Static checks (``ast``): no emulator needed.
"""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "shared" / "identity"

# collection -> the one module allowed to name it (relative to shared/identity)
OWNERS = {
    "users": "users/directory.py",
    "user_handles": "users/directory.py",
    "user_credentials": "users/credentials.py",
    "email_tokens": "users/accounts.py",
    "password_reset_requests": "users/accounts.py",
    "login_guards": "users/login_guard.py",
    "sessions": "sessions/sessions.py",
    "refresh_tokens": "sessions/sessions.py",
    "user_mfa": "factors/mfa.py",
    "mfa_challenges": "factors/challenges.py",
    "phone_otps": "factors/otp.py",
    "oauth_states": "social/oauth.py",
    "user_identities": "social/identities.py",
    "siwe_nonces": "web3/wallets.py",
    "user_wallets": "web3/wallet_links.py",
    "user_dids": "web3/did.py",
    "did_challenges": "web3/did.py",
    "api_keys": "apikeys/service.py",
}


def _modules(root: pathlib.Path = PACKAGE) -> dict[str, pathlib.Path]:
    """Dotted module name -> file, for every module under ``root`` (a ``shared`` sub-tree)."""
    base = root.parents[len(root.relative_to(ROOT).parts) - 1]
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(base).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


# --- collections -------------------------------------------------------------------------------

def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "text"`` assignments."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


def collection_uses(path: pathlib.Path) -> tuple[set[str], list[str]]:
    """(collections this module names in ``.collection(...)`` calls, problems). A call whose
    argument is neither a literal nor a constant of this very module is a problem: it reaches
    a collection through someone else's name."""
    tree = ast.parse(path.read_text(), str(path))
    consts = _string_constants(tree)
    names, problems = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("collection", "collection_group") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
            elif isinstance(arg, ast.Name) and arg.id in consts:
                names.add(consts[arg.id])
            else:
                problems.append(f"{path.relative_to(PACKAGE)}:{node.lineno} names a collection "
                                f"through {ast.unparse(arg)}")
    return names, problems


def test_every_collection_has_exactly_its_owner():
    used: dict[str, set[str]] = {}
    problems = []
    for path in _modules().values():
        names, bad = collection_uses(path)
        problems += bad
        for name in names:
            used.setdefault(name, set()).add(str(path.relative_to(PACKAGE)))
    assert not problems, problems
    assert set(used) == set(OWNERS), (
        f"collections without a declared owner: {sorted(set(used) - set(OWNERS))}; "
        f"owners of collections nobody uses: {sorted(set(OWNERS) - set(used))}")
    wrong = {c: sorted(mods) for c, mods in used.items() if mods != {OWNERS[c]}}
    assert not wrong, f"collections named outside their owner: {wrong}"


def test_collection_name_constants_live_only_in_the_owner():
    """A copy of an owner's constant (``CREDENTIALS = "user_credentials"`` elsewhere) is the
    first step of a second writer: refuse it even before it is used."""
    wrong = []
    for path in _modules().values():
        for const, value in _string_constants(ast.parse(path.read_text())).items():
            if value in OWNERS and str(path.relative_to(PACKAGE)) != OWNERS[value]:
                wrong.append(f"{path.relative_to(PACKAGE)}: {const} = {value!r}")
    assert not wrong, wrong


def test_collection_check_catches_a_foreign_name(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from x import WALLETS\n"
                   "def f(db):\n    return db.collection(WALLETS), db.collection('users')\n")
    ok = tmp_path / "ok.py"
    ok.write_text("USERS = 'users'\ndef f(db):\n    return db.collection(USERS)\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path
    try:
        names, problems = collection_uses(bad)
        assert names == {"users"} and len(problems) == 1 and "WALLETS" in problems[0]
        assert collection_uses(ok) == ({"users"}, [])
    finally:
        PACKAGE = saved


# --- imports -----------------------------------------------------------------------------------

def import_graph(modules: dict[str, pathlib.Path], prefix: str) -> dict[str, set[str]]:
    """Edges module -> module for every import (top level or inside a function) of a module
    under ``prefix``. ``from pkg import name`` points at ``pkg.name`` when that is a module."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                    anchor = anchor[:len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            for target in targets:
                while target and target not in modules:  # import a.b.c -> the deepest module
                    target = target.rpartition(".")[0]
                if target.startswith(prefix) and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``[a, b, ..., a]``), or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_between_identity_modules():
    graph = import_graph(_modules(), "shared.identity")
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
    # The graph is real: the known edges are there.
    assert "shared.identity.sessions.tokens" in graph["shared.identity.sessions.sessions"]
    assert "shared.identity.users.directory" in graph["shared.identity.users.accounts"]


def test_cycle_finder_sees_a_lazy_import_cycle(tmp_path):
    """The old sessions <-> tokens cycle: tokens imported sessions inside a function."""
    pkg = tmp_path / "shared" / "demo"
    pkg.mkdir(parents=True)
    (tmp_path / "shared" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "sessions.py").write_text("from shared.demo.tokens import issue\n")
    (pkg / "tokens.py").write_text("def verify():\n    from shared.demo import sessions\n")
    (pkg / "keys.py").write_text("import shared.demo.tokens\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        graph = import_graph(_modules(pkg), "shared.demo")
    finally:
        ROOT = saved
    assert graph["shared.demo.keys"] == {"shared.demo.tokens"}
    cycle = find_cycle(graph)
    assert cycle is not None and set(cycle) == {"shared.demo.sessions", "shared.demo.tokens"}
    graph["shared.demo.tokens"].clear()
    assert find_cycle(graph) is None


@pytest.mark.parametrize("init", sorted(str(p.relative_to(PACKAGE))
                                        for p in PACKAGE.rglob("__init__.py")))
def test_package_inits_import_nothing(init):
    tree = ast.parse((PACKAGE / init).read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
               and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")]
    assert not imports, f"{init} imports {[ast.unparse(n) for n in imports]}"
