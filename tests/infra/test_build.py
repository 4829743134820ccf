"""infra/build.py: one deployable folder and one deterministic zip per manifest function.

Every test builds a small fake repo in tmp_path, so none depends on the real functions/.
"""

import importlib.util
import os
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_build_module():
    spec = importlib.util.spec_from_file_location("payloom_infra_build", ROOT / "infra" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build = _load_build_module()

MANIFEST = """\
project: demo
region: europe-west1
topics:
  events: {description: Domain events.}
queues:
  default: {max_dispatches_per_second: 10, max_concurrent_dispatches: 5}
secrets:
  jwt-signing-keys: {description: keys}
functions:
  - name: api
    entry_point: handle
    trigger: http
    path: api
    secrets: [jwt-signing-keys]
  - name: sweeper
    entry_point: handle
    trigger: schedule
    cron: "* * * * *"
"""


def make_repo(root: Path, manifest: str = MANIFEST, functions=("api", "sweeper")) -> Path:
    (root / "functions").mkdir(parents=True)
    (root / "functions" / "manifest.yaml").write_text(manifest)
    for name in functions:
        (root / "functions" / name).mkdir()
        (root / "functions" / name / "main.py").write_text(f"# {name}\nfrom shared.platform import x\n")
    (root / "shared" / "platform").mkdir(parents=True)
    (root / "shared" / "__init__.py").write_text("")
    (root / "shared" / "platform" / "__init__.py").write_text("")
    (root / "shared" / "platform" / "x.py").write_text("VALUE = 1\n")
    (root / "shared" / "platform" / "__pycache__").mkdir()
    (root / "shared" / "platform" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\x00junk")
    (root / "requirements.txt").write_text("functions-framework==3.10.2\n")
    return root


def tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


EXPECTED_FILES = {
    "main.py",
    "requirements.txt",
    "shared/__init__.py",
    "shared/platform/__init__.py",
    "shared/platform/x.py",
}


def test_builds_a_folder_and_zip_per_function(tmp_path):
    repo = make_repo(tmp_path / "repo")
    out = tmp_path / "out"

    zips = build.build_all(out, root=repo)

    assert [z.name for z in zips] == ["api.zip", "sweeper.zip"]
    for name in ("api", "sweeper"):
        folder = out / name
        assert tree(folder) == EXPECTED_FILES  # no __pycache__, nothing else
        assert (folder / "main.py").read_text() == (repo / "functions" / name / "main.py").read_text()
        assert (folder / "requirements.txt").read_text() == (repo / "requirements.txt").read_text()
        assert (folder / "shared" / "platform" / "x.py").read_text() == "VALUE = 1\n"
        with zipfile.ZipFile(out / f"{name}.zip") as zf:
            names = zf.namelist()
            assert names == sorted(EXPECTED_FILES)
            assert zf.read("main.py") == (folder / "main.py").read_bytes()
            assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_zip_is_deterministic(tmp_path):
    repo = make_repo(tmp_path / "repo")
    first = build.build_all(tmp_path / "a", root=repo)[0].read_bytes()

    # Same content, different timestamps and a rebuild into a dirty folder: same bytes.
    for path in (repo / "shared").rglob("*.py"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    build.build_all(tmp_path / "b", root=repo)
    second = build.build_all(tmp_path / "b", root=repo)[0].read_bytes()

    assert first == second

    (repo / "shared" / "platform" / "x.py").write_text("VALUE = 2\n")
    third = build.build_all(tmp_path / "c", root=repo)[0].read_bytes()
    assert third != first


def test_rebuild_removes_stale_files(tmp_path):
    repo = make_repo(tmp_path / "repo")
    out = tmp_path / "out"
    build.build_all(out, root=repo)
    (out / "api" / "stale.py").write_text("old")

    build.build_all(out, root=repo)

    assert tree(out / "api") == EXPECTED_FILES


def test_manifest_function_without_folder_fails(tmp_path):
    repo = make_repo(tmp_path / "repo", functions=("api",))  # no functions/sweeper/

    with pytest.raises(build.BuildError, match=r"without functions/<name>/main.py: sweeper"):
        build.build_all(tmp_path / "out", root=repo)


def test_folder_missing_from_manifest_fails(tmp_path):
    repo = make_repo(tmp_path / "repo", functions=("api", "sweeper", "orphan"))

    with pytest.raises(build.BuildError, match=r"missing from functions/manifest.yaml: orphan"):
        build.build_all(tmp_path / "out", root=repo)


def test_pycache_folder_under_functions_is_not_a_function(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "functions" / "__pycache__").mkdir()

    assert len(build.build_all(tmp_path / "out", root=repo)) == 2


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("trigger: http", "trigger: webhook", "trigger must be one of"),
        ("    path: api\n", "", "trigger http needs 'path'"),
        ("secrets: [jwt-signing-keys]", "secrets: [nope]", "secret 'nope' is not a key of 'secrets'"),
        ("name: sweeper", "name: api", "function 'api': listed twice"),
        ("name: sweeper", "name: Sweeper-Job", "name must match"),
    ],
)
def test_invalid_manifest_is_rejected(tmp_path, old, new, message):
    repo = make_repo(tmp_path / "repo", manifest=MANIFEST.replace(old, new, 1))

    with pytest.raises(build.BuildError, match=message):
        build.load_manifest(repo / "functions" / "manifest.yaml")


def test_cli_reports_errors_without_traceback(tmp_path, capsys, monkeypatch):
    repo = make_repo(tmp_path / "repo", functions=("api",))
    # main() builds the repo it lives in; point it at the fake one.
    original = build.build_all
    monkeypatch.setattr(build, "build_all", lambda out: original(out, root=repo))

    assert build.main(["--out", str(tmp_path / "out")]) == 1
    assert "build failed: manifest functions without functions/<name>/main.py: sweeper" in capsys.readouterr().err


def test_real_manifest_is_valid():
    manifest = build.load_manifest(ROOT / "functions" / "manifest.yaml")
    assert manifest["functions"], "the manifest lists no function"


def test_page_functions_carry_their_vendored_npm_files(tmp_path):
    """A function with a web_root serves Chart.js and Swagger UI itself: the build copies the
    pinned files from node_modules into its bundle; other functions stay small."""
    from shared.web.assets import VENDOR
    repo = make_repo(tmp_path / "repo")
    manifest = (repo / "functions" / "manifest.yaml").read_text()
    (repo / "functions" / "manifest.yaml").write_text(
        manifest.replace("    path: api\n", "    path: api\n    web_root: pay\n", 1))
    for name, rel in VENDOR.items():
        source = repo / "node_modules" / rel
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"/* {name} */")
    build.build_all(tmp_path / "out", root=repo)
    vendor = tmp_path / "out" / "api" / "shared" / "web" / "static" / "vendor"
    assert sorted(p.name for p in vendor.iterdir()) == sorted(VENDOR)
    assert (vendor / "chart.umd.min.js").read_text() == "/* chart.umd.min.js */"
    assert not (tmp_path / "out" / "worker" / "shared" / "web").exists()


def test_a_page_function_without_node_modules_fails_clearly(tmp_path):
    repo = make_repo(tmp_path / "repo")
    manifest = (repo / "functions" / "manifest.yaml").read_text()
    (repo / "functions" / "manifest.yaml").write_text(
        manifest.replace("    path: api\n", "    path: api\n    web_root: pay\n", 1))
    with pytest.raises(build.BuildError, match="npm ci"):
        build.build_all(tmp_path / "out", root=repo)
