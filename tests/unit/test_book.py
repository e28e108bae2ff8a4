"""`lhp book` machinery: profiles, toc, papermill execution, records, failure messages."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml

from lhp_core import book, cli

ROOT = Path(__file__).resolve().parents[2]


def _notebook(path: Path, cells: list[tuple[str, str]]) -> None:
    nb = nbformat.v4.new_notebook()
    for tag, source in cells:
        cell = nbformat.v4.new_code_cell(source)
        if tag:
            cell.metadata["tags"] = [tag]
        nb.cells.append(cell)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def tiny_book(tmp_path: Path) -> Path:
    """A repo-like folder: _config.yml, book/_toc.yml, book/profiles.yml and two chapters."""
    (tmp_path / "book").mkdir()
    (tmp_path / "_config.yml").write_text("title: t\nexecute:\n  execute_notebooks: 'off'\n")
    (tmp_path / "book" / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: good\n  - file: bad\n")
    (tmp_path / "book" / "intro.md").write_text("# intro\n")
    (tmp_path / "book" / "profiles.yml").write_text(yaml.safe_dump({
        "ci": {"common": {"suite": "x", "models": None, "steps": None, "device": "cpu"}, "chapters": {"good": {"n": 21}}},
        "default": {"common": {"suite": "y", "models": ["s"], "steps": [0, 8], "device": "cpu"}},
    }))
    _notebook(tmp_path / "book" / "good.ipynb", [
        ("parameters", "n = 1\nsuite = 'none'\ndevice = 'cpu'"),
        ("", "import numpy as np\nfrom lhp_core.book import record"),
        ("", "record(twice=np.float64(2 * n), suite=suite, n=n, ok=True)"),
    ])
    _notebook(tmp_path / "book" / "bad.ipynb", [
        ("parameters", "n = 1"),
        ("", "x = n + 1"),
        ("", "raise ValueError('broken on purpose')"),
    ])
    return tmp_path


def test_record_validates_and_converts() -> None:
    got = book.record(a=np.float32(0.5), b=np.int64(3), c="s", d=True, e=float("nan"))
    assert got == {"a": 0.5, "b": 3, "c": "s", "d": True, "e": "nan"}
    assert type(got["b"]) is int
    with pytest.raises(TypeError, match="got an array"):
        book.record(x=np.zeros(3))
    with pytest.raises(TypeError, match="flat numbers"):
        book.record(x=[1, 2])
    with pytest.raises(ValueError, match="at least one"):
        book.record()


def test_parameters_merge_profile_and_chapter(tiny_book: Path) -> None:
    profiles = book.load_profiles(tiny_book / "book" / "profiles.yml")
    assert book.chapter_parameters("ci", "good", profiles) == {
        "suite": "x", "models": None, "steps": None, "device": "cpu", "n": 21, "profile": "ci"}
    assert book.chapter_parameters("default", "good", profiles)["steps"] == [0, 8]
    with pytest.raises(book.BookError, match="valid profiles: ci, default"):
        book.chapter_parameters("gpu", "good", profiles)


def test_profiles_missing_common_key(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_text(yaml.safe_dump({"ci": {"common": {"suite": "x"}}}))
    with pytest.raises(book.BookError, match=r"lacks common parameters \['models', 'steps', 'device'\]"):
        book.load_profiles(path)


def test_toc_lists_chapters_in_order(tiny_book: Path) -> None:
    assert book.toc_files(tiny_book) == ["intro", "good", "bad"]
    assert book.chapters(tiny_book) == ["good", "bad"]


def test_execute_and_read_record(tiny_book: Path, tmp_path: Path) -> None:
    out = book.execute_chapter("good", "ci", tmp_path / "exec", root=tiny_book, progress=False)
    assert book.read_record(out) == {"twice": 42.0, "suite": "x", "n": 21, "ok": True}
    # The injected parameters cell is where papermill puts it, right after the tagged one.
    nb = nbformat.read(out, as_version=4)
    assert "injected-parameters" in nb.cells[1].metadata.tags


def test_failing_chapter_names_notebook_and_cell(tiny_book: Path, tmp_path: Path) -> None:
    with pytest.raises(book.BookError) as err:
        book.execute_chapter("bad", "ci", tmp_path / "exec", root=tiny_book, progress=False)
    msg = str(err.value)
    assert "book/bad.ipynb" in msg and "ValueError: broken on purpose" in msg
    assert "failed in cell 3 (In [4] of the executed copy)" in msg, msg  # source cell 3; papermill injected one before it
    with pytest.raises(book.BookError, match="holds no record"):
        book.read_record(tmp_path / "exec" / "bad.ipynb")


def test_unknown_chapter_and_missing_notebook(tiny_book: Path, tmp_path: Path) -> None:
    with pytest.raises(book.BookError, match="chapters: good, bad"):
        book.build_book("ci", only="nope", root=tiny_book, out=tmp_path)
    with pytest.raises(book.BookError, match="unknown profile 'gpu'"):
        book.build_book("gpu", root=tiny_book, out=tmp_path)
    with pytest.raises(FileNotFoundError, match="execute the chapter first"):
        book.read_record(tmp_path / "missing.ipynb")


def test_cli_reports_book_errors(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["book", "--profile", "ci", "--only", "no-such-chapter", "--no-build"]) == 1
    assert "is not a chapter of book/_toc.yml" in capsys.readouterr().err


def test_repository_profiles_and_toc() -> None:
    profiles = book.load_profiles(ROOT / "book" / "profiles.yml")
    assert set(book.PROFILES) <= set(profiles)
    assert profiles["ci"]["common"]["suite"] == "lhp-micro" and profiles["ci"]["common"]["device"] == "cpu"
    assert profiles["default"]["common"]["suite"] == "lhp-mini" and profiles["default"]["common"]["device"] == "cpu"
    assert profiles["gpu"]["common"]["suite"] == "lhp-gpu" and profiles["gpu"]["common"]["device"] == "cuda"
    files = book.toc_files(ROOT)
    assert files[0] == "intro" and "suite" in files
    for name in files:
        assert (ROOT / "book" / f"{name}.ipynb").is_file() or (ROOT / "book" / f"{name}.md").is_file(), name
    for chapter in book.chapters(ROOT):
        nb = nbformat.read(ROOT / "book" / f"{chapter}.ipynb", as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{chapter}.ipynb needs exactly one cell tagged 'parameters'"
        assert "record(" in nb.cells[-1].source, f"{chapter}.ipynb must end with a record(...) cell"
        # `lhp book` gives each kernel cores // jobs threads; a chapter that sets its own count
        # oversubscribes the CPU beside the other chapters (experts with 2 threads: 726 s vs 85 s).
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert not re.search(r"set_num_threads|threadpool_limits|NUM_THREADS", code), \
            f"{chapter}.ipynb sets a thread count; leave it to `lhp book` (book.THREAD_VARS)"


def test_notebook_defaults_are_the_default_profile() -> None:
    """A chapter run by hand (no papermill) computes what `lhp book --profile default` does."""
    import ast

    profiles = book.load_profiles(ROOT / "book" / "profiles.yml")
    for chapter in book.chapters(ROOT):
        nb = nbformat.read(ROOT / "book" / f"{chapter}.ipynb", as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        defaults = {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(cell.source).body
                    if isinstance(n, ast.Assign)}
        for key, value in book.chapter_parameters("default", chapter, profiles).items():
            if key != "profile":
                assert defaults.get(key, "<missing>") == value, f"{chapter}.ipynb: {key} = {defaults.get(key)!r}, profile {value!r}"


def test_suites_needed_collects_every_suite_parameter() -> None:
    """`lhp book` trains the profile's suite and each chapter's `*_suite` parameter before executing."""
    profiles = book.load_profiles(ROOT / "book" / "profiles.yml")
    assert book.suites_needed("default", book.chapters(ROOT), profiles) == ["lhp-mini", "lhp-mini-copyreg"]
    assert book.suites_needed("ci", ["suite"], profiles) == ["lhp-micro"]  # reading not executed: no twin
    custom = {"p": {"common": {"suite": "a", "models": None, "steps": None, "device": "cpu"},
                    "chapters": {"x": {"other_suite": "b", "empty_suite": "", "n_suite": 3}, "y": {"twin_suite": "a"}}}}
    assert book.suites_needed("p", ["x", "y"], custom) == ["a", "b"]


def _names(reqs: list[str]) -> dict[str, str]:
    return {re.split(r"[<>=!~\[ ;]", r, 1)[0].lower().replace("_", "-"): r.replace(" ", "") for r in reqs}


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _names(project["dependencies"] + project["optional-dependencies"]["test"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    got = _names([r for r in pip if not r.startswith("-e")])
    assert got == wanted, "environment.yml and pyproject.toml disagree; copy pyproject's dependencies + test extras"
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])


def test_readme_lists_every_dataset_and_license() -> None:
    readme = (ROOT / "README.md").read_text()
    for path in sorted((ROOT / "data_manifests").glob("*.yaml")):
        manifest = yaml.safe_load(path.read_text())
        row = next((l for l in readme.splitlines() if l.startswith(f"| `{manifest['id']}` |")), None)
        assert row is not None, f"README.md lacks a row for dataset {manifest['id']}"
        assert manifest["license"] in row, f"README.md row of {manifest['id']} does not state {manifest['license']!r}"
    assert "pip install torch==2.13.0 && pip install -e . && LHP_DATA_MIRROR=../shared/data lhp book --profile default" in readme
    assert 'pip install -e ".[test]"' in readme and "python -m pytest tests" in readme
    assert (ROOT / "docs" / "book.png").is_file(), "README screenshot missing: LHP_UPDATE_SCREENSHOT=1 pytest tests/notebooks/test_browser.py"


def _parallel_book(root: Path, chapters: list[str]) -> None:
    """Point tiny_book's toc at ``chapters`` and add a profile whose suite is a plain folder (nothing to train)."""
    (root / "book" / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n" + "".join(f"  - file: {c}\n" for c in chapters))
    profiles = yaml.safe_load((root / "book" / "profiles.yml").read_text())
    profiles["par"] = {"common": {"suite": str(root), "models": None, "steps": None, "device": "cpu"},
                       "chapters": {"good": {"n": 5}}}
    (root / "book" / "profiles.yml").write_text(yaml.safe_dump(profiles))
    _notebook(root / "book" / "env.ipynb", [
        ("parameters", "suite = 'none'"),
        ("", "import os\nfrom lhp_core.book import record\n"
             "record(**{v: os.environ.get(v, 'unset') for v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')})"),
    ])


def test_chapters_run_side_by_side_with_split_threads(tiny_book: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """jobs=2: both chapters executed by two worker processes, each kernel told to use cores // 2 threads."""
    import os

    _parallel_book(tiny_book, ["good", "env"])
    run = book.build_book("par", build=False, root=tiny_book, out=tmp_path, progress=False, jobs=2)
    assert list(run.executed) == ["good", "env"] and set(run.seconds) == {"good", "env"}
    assert book.read_record(run.executed["good"])["twice"] == 10.0
    want = str(max(1, (os.cpu_count() or 1) // 2))
    assert book.read_record(run.executed["env"]) == dict.fromkeys(book.THREAD_VARS, want)
    # Serially (jobs=1) the kernel gets every core, and the caller's environment is left as it was.
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    run = book.build_book("par", only="env", build=False, root=tiny_book, out=tmp_path, progress=False, jobs=1)
    assert book.read_record(run.executed["env"])["OMP_NUM_THREADS"] == str(os.cpu_count() or 1)
    assert os.environ["OMP_NUM_THREADS"] == "7"


def test_failing_chapter_side_by_side_names_notebook(tiny_book: Path, tmp_path: Path) -> None:
    _parallel_book(tiny_book, ["good", "bad"])
    with pytest.raises(book.BookError, match=r"book/bad\.ipynb failed in cell 3.*broken on purpose"):
        book.build_book("par", build=False, root=tiny_book, out=tmp_path, progress=False, jobs=2)
    with pytest.raises(book.BookError, match="--jobs must be >= 1"):
        book.build_book("par", build=False, root=tiny_book, out=tmp_path, progress=False, jobs=0)


def test_start_first_orders_execution_not_the_book(tiny_book: Path, tmp_path: Path) -> None:
    _parallel_book(tiny_book, ["good", "env"])
    profiles = yaml.safe_load((tiny_book / "book" / "profiles.yml").read_text())
    profiles["par"]["start_first"] = ["env"]
    (tiny_book / "book" / "profiles.yml").write_text(yaml.safe_dump(profiles))
    run = book.build_book("par", build=False, root=tiny_book, out=tmp_path, progress=False, jobs=1)
    assert list(run.executed) == ["good", "env"]  # toc order
    started = {c: nbformat.read(p, as_version=4).metadata.papermill.start_time for c, p in run.executed.items()}
    assert started["env"] < started["good"]


def test_relative_data_mirror_is_the_callers_folder(tiny_book: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """`LHP_DATA_MIRROR=../shared/data lhp book` from the repo root: kernels run in book/, yet fetch there."""
    import os

    from lhp_core import config

    mirror = config.data_mirror()
    assert mirror is not None and mirror.is_dir(), "the tests need the shared data mirror"
    _parallel_book(tiny_book, ["fetching", "good"])  # two chapters, so jobs=2 runs worker processes
    _notebook(tiny_book / "book" / "fetching.ipynb", [
        ("parameters", "suite = 'none'"),
        ("", "from lhp_core.book import record\nfrom lhp_core.data.fetch import fetch\n"
             "record(path=str(fetch('word_similarity', 'SOURCE.md')))"),
    ])
    monkeypatch.chdir(tiny_book)
    monkeypatch.setenv("LHP_DATA_MIRROR", os.path.relpath(mirror, tiny_book))
    monkeypatch.setenv("LHP_CACHE", str(tmp_path / "empty-cache"))  # no cached copy to fall back on
    for jobs in (1, 2):
        run = book.build_book("par", build=False, root=tiny_book, out=tmp_path / f"j{jobs}", progress=False, jobs=jobs)
        assert Path(book.read_record(run.executed["fetching"])["path"]).resolve() == (mirror / "word_similarity" / "SOURCE.md").resolve()
    assert os.environ["LHP_DATA_MIRROR"] == str(tiny_book / os.path.relpath(mirror, tiny_book))


def test_missing_relative_mirror_is_named_in_the_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lhp_core.data.fetch import DataUnavailable, fetch

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LHP_DATA_MIRROR", "../no/such/mirror")
    monkeypatch.setenv("LHP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("pooch.retrieve", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("offline")))
    with pytest.raises(DataUnavailable, match=r"LHP_DATA_MIRROR=\.\./no/such/mirror, which is not a folder as seen from "
                                              + re.escape(str(tmp_path))):
        fetch("word_similarity", "SOURCE.md")
