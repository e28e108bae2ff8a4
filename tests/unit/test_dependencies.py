"""What lhp imports is what pyproject.toml declares, and the other way round.

Every third-party module that ``lhp_core`` imports (read with ``ast``, function-level imports
included) belongs to a declared dependency, and every declared dependency is imported or named
in :data:`USED_WITHOUT_IMPORT` with the reason; the tests' imports are covered by the
dependencies plus the ``test`` extra.
"""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Distribution -> the top-level modules it provides (where the names differ, or there are several).
MODULES = {"scikit-learn": {"sklearn"}, "pyyaml": {"yaml"}, "vl-convert-python": {"vl_convert"},
           "dask": {"dask", "distributed"}, "ipython": {"IPython"}, "huggingface-hub": {"huggingface_hub"}}

#: Declared but never imported by lhp_core, and why they are needed anyway.
USED_WITHOUT_IMPORT = {
    "pyarrow": "pandas' parquet engine (the concept pool cache: to_parquet / read_parquet)",
    "openpyxl": "pandas' .xlsx reader (feature norms: read_excel)",
    "netcdf4": "xarray's netCDF engine (training_record.nc, measure caches)",
    "ipykernel": "the kernel papermill runs the book's chapters in",
    "jupyter-book": "run as a subprocess to build the book",
}

#: Of the test extra, run rather than imported.
TEST_TOOLS = {"pytest-timeout": "pytest plugin (--timeout)", "playwright": "pytest.importorskip in the browser test",
              "ruff": "the linter .ci/run runs (ruff check .)"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_name(r) for r in project["dependencies"]}, {_name(r) for r in project["optional-dependencies"]["test"]}


def _imports(folder: Path) -> dict[str, set[str]]:
    """Top-level third-party module -> files of ``folder`` that import it."""
    own = {"lhp_core", "tests", "benchmarks"}
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                     else [])
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in own:
                    found.setdefault(top, set()).add(str(path.relative_to(folder)))
    return found


def _modules(dists: set[str]) -> dict[str, str]:
    """Module -> the distribution that provides it."""
    return {m: d for d in dists for m in MODULES.get(d, {d.replace("-", "_")})}


def test_every_import_of_lhp_core_is_declared_and_every_dependency_used():
    deps, _ = _declared()
    provided = _modules(deps)
    imported = _imports(ROOT / "lhp_core")
    undeclared = {m: sorted(files)[:3] for m, files in imported.items() if m not in provided}
    assert not undeclared, f"imported by lhp_core but not in pyproject's dependencies: {undeclared}"
    used = {provided[m] for m in imported}
    unused = deps - used - set(USED_WITHOUT_IMPORT)
    assert not unused, f"declared but never imported by lhp_core (remove, or say why in USED_WITHOUT_IMPORT): {unused}"
    assert not set(USED_WITHOUT_IMPORT) - deps, "USED_WITHOUT_IMPORT names a package that is not declared"
    assert not set(USED_WITHOUT_IMPORT) & used, "a package in USED_WITHOUT_IMPORT is imported after all"


def test_every_import_of_the_tests_is_declared():
    deps, test = _declared()
    provided = _modules(deps | test)
    imported = _imports(ROOT / "tests")
    undeclared = {m: sorted(files)[:3] for m, files in imported.items() if m not in provided}
    assert not undeclared, f"imported by the tests but not declared (dependencies or the test extra): {undeclared}"
    unused = test - {provided[m] for m in imported} - set(TEST_TOOLS)
    assert not unused, f"in the test extra but never imported by the tests: {unused}"


def test_the_scan_sees_function_level_imports(tmp_path):
    """The check can fail: an import inside a function is found."""
    (tmp_path / "m.py").write_text("import os\n\ndef f():\n    import somepkg.sub\n    from other import x\n"
                                   "    from . import y\n")
    assert _imports(tmp_path) == {"somepkg": {"m.py"}, "other": {"m.py"}}


def test_the_version_is_the_changelogs_newest_release():
    """``lhp --version``, the package metadata and the CHANGELOG's newest section name one release, so a
    ``ChangedDefaultWarning`` that says "since 0.2.0" matches what the user has installed."""
    import lhp_core

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert lhp_core.__version__ == declared, f"lhp_core.__version__ {lhp_core.__version__} != pyproject {declared}"
    newest = re.search(r"^## (\d+\.\d+\.\d+)", (ROOT / "CHANGELOG.md").read_text(), flags=re.M)
    assert newest, "CHANGELOG.md has no '## X.Y.Z' release heading"
    release = re.match(r"\d+\.\d+\.\d+", declared).group(0)
    assert release == newest.group(1), f"pyproject {declared} is not CHANGELOG's newest release {newest.group(1)}"
    unreleased = "(unreleased)" in (ROOT / "CHANGELOG.md").read_text().split("\n## ", 2)[1].splitlines()[0]
    assert unreleased == (".dev" in declared), f"{declared}: a .dev version goes with an (unreleased) section"
