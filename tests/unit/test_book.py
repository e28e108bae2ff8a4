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
from lhp_core import profiles as lhp_profiles

ROOT = Path(__file__).resolve().parents[2]
#: The common parameters every chapter declares (book.COMMON_KEYS), as a parameters cell.
COMMON = "suite = 'none'\nmodels = None\nsteps = None\ndevice = 'cpu'\n"


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
    (tmp_path / "book" / "_toc.yml").write_text("format: jb-book\nroot: intro\n"
                                                "chapters:\n  - file: good\n  - file: bad\n")
    (tmp_path / "book" / "intro.md").write_text("# intro\n")
    (tmp_path / "book" / "profiles.yml").write_text(yaml.safe_dump({
        "ci": {"common": {"suite": "x", "models": None, "steps": None, "device": "cpu"},
               "chapters": {"good": {"n": 21}}},
        "default": {"common": {"suite": "y", "models": ["s"], "steps": [0, 8], "device": "cpu"}},
    }))
    _notebook(tmp_path / "book" / "good.ipynb", [
        ("parameters", COMMON + "n = 1"),
        ("", "import numpy as np\nfrom lhp_core.book import record"),
        ("", "record(twice=np.float64(2 * n), suite=suite, n=n, ok=True)"),
    ])
    _notebook(tmp_path / "book" / "bad.ipynb", [
        ("parameters", COMMON + "n = 1"),
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
    with pytest.raises(lhp_profiles.ProfileError, match="valid profiles: ci, default"):
        book.chapter_parameters("gpu", "good", profiles)


def test_profiles_missing_common_key(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_text(yaml.safe_dump({"ci": {"common": {"suite": "x"}}}))
    with pytest.raises(lhp_profiles.ProfileError, match=r"lacks common parameters \['models', 'steps', 'device'\]"):
        book.load_profiles(path)


def test_toc_lists_chapters_in_order(tiny_book: Path) -> None:
    assert book.toc_files(tiny_book) == ["intro", "good", "bad"]
    assert book.chapters(tiny_book) == ["good", "bad"]


def test_execute_and_read_record(tiny_book: Path, tmp_path: Path) -> None:
    out = book.execute_chapter("good", "ci", tmp_path / "exec", root=tiny_book)
    assert book.read_record(out) == {"twice": 42.0, "suite": "x", "n": 21, "ok": True}
    # The injected parameters cell is where papermill puts it, right after the tagged one.
    nb = nbformat.read(out, as_version=4)
    assert "injected-parameters" in nb.cells[1].metadata.tags


def test_failing_chapter_names_notebook_and_cell(tiny_book: Path, tmp_path: Path) -> None:
    with pytest.raises(book.BookError) as err:
        book.execute_chapter("bad", "ci", tmp_path / "exec", root=tiny_book)
    msg = str(err.value)
    assert "book/bad.ipynb" in msg and "ValueError: broken on purpose" in msg
    # source cell 3; papermill injected one before it
    assert "failed in cell 3 (In [4] of the executed copy)" in msg, msg
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
                assert defaults.get(key, "<missing>") == value, \
                    f"{chapter}.ipynb: {key} = {defaults.get(key)!r}, profile {value!r}"


def test_suites_needed_collects_every_suite_parameter() -> None:
    """`lhp book` trains the profile's suite and each chapter's `*_suite` parameter before executing."""
    profiles = book.load_profiles(ROOT / "book" / "profiles.yml")
    assert book.suites_needed("default", book.chapters(ROOT), profiles) == ["lhp-mini", "lhp-mini-copyreg"]
    assert book.suites_needed("ci", ["suite"], profiles) == ["lhp-micro"]  # reading not executed: no twin
    custom = {"p": {"common": {"suite": "a", "models": None, "steps": None, "device": "cpu"},
                    "chapters": {"x": {"other_suite": "b", "empty_suite": "", "n_suite": 3}, "y": {"twin_suite": "a"}}}}
    assert book.suites_needed("p", ["x", "y"], custom) == ["a", "b"]


def _names(reqs: list[str]) -> dict[str, str]:
    return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower().replace("_", "-"): r.replace(" ", "") for r in reqs}


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
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{manifest['id']}` |")), None)
        assert row is not None, f"README.md lacks a row for dataset {manifest['id']}"
        assert manifest["license"] in row, f"README.md row of {manifest['id']} does not state {manifest['license']!r}"
    assert ("pip install torch==2.13.0 && pip install -e . && "
            "LHP_DATA_MIRROR=../shared/data lhp book --profile default") in readme
    assert 'pip install -e ".[test]"' in readme and "python -m pytest tests" in readme
    assert (ROOT / "docs" / "book.png").is_file(), \
        "README screenshot missing: LHP_UPDATE_SCREENSHOT=1 pytest tests/notebooks/test_browser.py"


def _parallel_book(root: Path, chapters: list[str]) -> None:
    """Point tiny_book's toc at ``chapters`` and add a profile whose suite is a plain folder (nothing to train)."""
    (root / "book" / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n" + "".join(f"  - file: {c}\n" for c in chapters))
    profiles = yaml.safe_load((root / "book" / "profiles.yml").read_text())
    profiles["par"] = {"common": {"suite": str(root), "models": None, "steps": None, "device": "cpu"},
                       "chapters": {"good": {"n": 5}}}
    (root / "book" / "profiles.yml").write_text(yaml.safe_dump(profiles))
    _notebook(root / "book" / "env.ipynb", [
        ("parameters", COMMON),
        ("", ("import os\nfrom lhp_core.book import record\n"
             "record(**{v: os.environ.get(v, 'unset') "
             "for v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')})")),
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
        ("parameters", COMMON),
        ("", ("from lhp_core.book import record\nfrom lhp_core.data.fetch import fetch\n"
             "record(path=str(fetch('word_similarity', 'SOURCE.md')))")),
    ])
    monkeypatch.chdir(tiny_book)
    monkeypatch.setenv("LHP_DATA_MIRROR", os.path.relpath(mirror, tiny_book))
    monkeypatch.setenv("LHP_CACHE", str(tmp_path / "empty-cache"))  # no cached copy to fall back on
    for jobs in (1, 2):
        run = book.build_book("par", build=False, root=tiny_book, out=tmp_path / f"j{jobs}", progress=False, jobs=jobs)
        assert (Path(book.read_record(run.executed["fetching"])["path"]).resolve()
                == (mirror / "word_similarity" / "SOURCE.md").resolve())
    assert os.environ["LHP_DATA_MIRROR"] == str(tiny_book / os.path.relpath(mirror, tiny_book))


def test_missing_relative_mirror_is_named_in_the_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lhp_core.data.fetch import DataUnavailable, fetch

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LHP_DATA_MIRROR", "../no/such/mirror")
    monkeypatch.setenv("LHP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("pooch.retrieve", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("offline")))
    with pytest.raises(DataUnavailable,
                       match=r"LHP_DATA_MIRROR=\.\./no/such/mirror, which is not a folder as seen from "
                             + re.escape(str(tmp_path))):
        fetch("word_similarity", "SOURCE.md")


def test_only_declared_parameters_are_injected(tiny_book: Path, tmp_path: Path, capfd: pytest.CaptureFixture,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """`profile` reaches only chapters that declare it; papermill never warns of unknown parameters."""
    profiles = book.load_profiles(tiny_book / "book" / "profiles.yml")
    good = tiny_book / "book" / "good.ipynb"
    params = book.chapter_parameters("ci", "good", profiles)
    assert "profile" in params
    assert book.injected_parameters(good, params) == {"suite": "x", "models": None, "steps": None, "device": "cpu",
                                                      "n": 21}
    _notebook(tiny_book / "book" / "declares.ipynb", [
        ("parameters", COMMON + "profile = 'default'"),
        ("", "from lhp_core.book import record\nrecord(profile=profile)"),
    ])
    with pytest.raises(book.BookError, match=r"declares\.ipynb: book/profiles\.yml passes \['n'\].*`n = \.\.\.`"):
        book.injected_parameters(tiny_book / "book" / "declares.ipynb", params)
    undeclared = tiny_book / "book" / "lacks.ipynb"
    _notebook(undeclared, [("parameters", "suite = 'none'"), ("", "pass")])
    with pytest.raises(book.BookError, match=r"passes \['device', 'models', 'steps'\]"):
        book.injected_parameters(undeclared, book.chapter_parameters("ci", "lacks", profiles))

    caplog.set_level("WARNING", logger="papermill")
    out = book.execute_chapter("good", "ci", tmp_path / "exec", root=tiny_book)
    injected = next(c for c in nbformat.read(out, as_version=4).cells if "injected-parameters" in c.metadata.tags)
    assert "profile" not in injected.source and "n = 21" in injected.source
    executed = book.execute_chapter("declares", "ci", tmp_path / "exec", root=tiny_book)
    assert book.read_record(executed) == {"profile": "ci"}
    logged = caplog.text + "".join(capfd.readouterr())
    assert "Passed unknown parameter" not in logged
    # The kernels talk over IPC sockets: ipykernel has no plain-TCP warning to give.
    assert "without encryption" not in logged


def _book_run_chapter(path: Path, body: str) -> None:
    _notebook(path, [("parameters", COMMON), ("", body), ("", "from lhp_core.book import record\nrecord(done=True)")])


def test_book_run_leaves_no_widget_state(tiny_book: Path, tmp_path: Path) -> None:
    """Inside `lhp book`, inspectors draw a static view and progress bars print nothing: no widget, no CDN."""
    _book_run_chapter(tiny_book / "book" / "quiet.ipynb", (
        "import pandas as pd, altair as alt\n"
        "from lhp_core import progress\n"
        "from lhp_core.viz import charts, inspectors\n"
        "for _ in progress.bar(range(3), desc='stage', unit='item'):\n"
        "    pass\n"
        "df = pd.DataFrame({'x': [0, 1, 2], 'y': [1.0, 2.0, 4.0], 'model': ['a', 'a', 'b']})\n"
        "inspectors.live(lambda model: alt.Chart(df[df.model == model]).mark_line().encode(x='x', y='y'),\n"
        "                model=inspectors.dropdown(['a', 'b'], value='b'))"))
    # What the check exists for: a chapter that builds ipywidgets itself still leaves widget state.
    _book_run_chapter(tiny_book / "book" / "widgety.ipynb", "import ipywidgets\nipywidgets.IntSlider(value=3)")
    quiet = book.execute_chapter("quiet", "ci", tmp_path / "exec", root=tiny_book)
    widgety = book.execute_chapter("widgety", "ci", tmp_path / "exec", root=tiny_book)
    assert book.widget_models(quiet) == {}
    assert book.widget_models(widgety) == {"IntSliderModel": 1, "LayoutModel": 1, "SliderStyleModel": 1}
    nb = nbformat.read(quiet, as_version=4)
    outputs = nb.cells[2].outputs
    assert [o.output_type for o in outputs] == ["execute_result"]  # the chart; no stream from the bar
    html = outputs[0].data["text/html"]
    assert "lhp-chart" in html and '"b"' in html and "widget-view" not in str(outputs)
    assert book.WIDGET_STATE not in nbformat.writes(nb)


def test_summary_line_reports_wall_time() -> None:
    run = book.BookRun("ci", seconds={"a": 700.4, "b": 637.8, "c": 0.2}, jobs=2, wall_seconds=680.2,
                       total_seconds=1021.0)
    assert book.summary(run) == ("3 chapters in 680 s wall time (1338 s of chapter time, 2 at a time); "
                                 "1021 s in all with training and the HTML build")
    one = book.BookRun("ci", seconds={"suite": 40.0}, jobs=1, wall_seconds=41.0, total_seconds=41.0)
    assert book.summary(one) == "1 chapter in 41 s wall time (40 s of chapter time, 1 at a time)"


def test_cli_ends_with_the_summary_line(tiny_book: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """`lhp book` (the CLI's run()) closes with the wall-time line, and the display counts chapters k/n."""
    _parallel_book(tiny_book, ["good", "env"])
    monkeypatch.setattr(book, "repo_root", lambda: tiny_book)
    monkeypatch.setattr(book, "PROFILES", (*book.PROFILES, "par"))
    args = cli_args(["--profile", "par", "--no-build", "--jobs", "2", "--out", str(tmp_path)])
    assert book.run(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"\[lhp book\] 2 chapters in \d+ s wall time \(\d+ s of chapter time, 2 at a time\)"
                        r"(; \d+ s in all with training and the HTML build)?", lines[-1]), lines[-1]
    done = [line for line in lines if " done in " in line]
    assert len(done) == 2 and "(chapters 1/2," in done[0] and "(chapters 2/2," in done[1]
    assert not any("\r" in line for line in lines)


def test_chapters_run_last_are_counted_with_the_others(tiny_book: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A chapter the profile runs last (the Timeline) starts after the others, and one count runs k/n over all."""
    _parallel_book(tiny_book, ["env", "good", "last"])
    _notebook(tiny_book / "book" / "last.ipynb", [("parameters", COMMON), ("", "from lhp_core.book import record\n"
                                                                           "record(ok=True)")])
    profiles = yaml.safe_load((tiny_book / "book" / "profiles.yml").read_text())
    profiles["par"]["run_last"] = ["last"]
    (tiny_book / "book" / "profiles.yml").write_text(yaml.safe_dump(profiles))
    monkeypatch.setattr(book, "repo_root", lambda: tiny_book)
    monkeypatch.setattr(book, "PROFILES", (*book.PROFILES, "par"))
    assert book.run(cli_args(["--profile", "par", "--no-build", "--jobs", "2", "--out", str(tmp_path)])) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    done = [re.match(r"\[lhp book\] (\w+) done in \d+ s \(chapters (\d+)/(\d+),", line) for line in lines]
    done = [m.groups() for m in done if m]
    assert [(k, n) for _, k, n in done] == [("1", "3"), ("2", "3"), ("3", "3")]
    assert done[-1][0] == "last"
    assert re.fullmatch(r"\[lhp book\] 3 chapters in \d+ s wall time \(\d+ s of chapter time, 2 at a time\)"
                        r"(; \d+ s in all with training and the HTML build)?", lines[-1]), lines[-1]
    started = {c: nbformat.read(tmp_path / "executed" / f"{c}.ipynb", as_version=4).metadata.papermill
               for c in ("env", "good", "last")}
    assert started["last"].start_time >= max(started["env"].end_time, started["good"].end_time)


def cli_args(argv: list[str]):
    import argparse

    parser = argparse.ArgumentParser()
    book.configure(parser)
    return parser.parse_args(argv)


def test_only_builds_a_book_of_the_executed_chapters(tiny_book: Path, tmp_path: Path) -> None:
    """The staged table of contents of a partial run lists the chapters executed so far, in toc order."""
    stage = tmp_path / "stage"
    book._stage_sources(tiny_book, stage, {"bad"})
    toc = yaml.safe_load((stage / "_toc.yml").read_text())
    assert toc["root"] == "intro" and toc["chapters"] == [{"file": "bad"}]
    book._stage_sources(tiny_book, stage, {"good", "bad"})
    assert yaml.safe_load((stage / "_toc.yml").read_text())["chapters"] == [{"file": "good"}, {"file": "bad"}]
    nested = [{"file": "good", "sections": [{"file": "bad"}]}, {"file": "notes"}]
    assert book._keep_files(nested, {"good", "notes"}) == [{"file": "good"}, {"file": "notes"}]
    assert book._keep_files([{"caption": "x", "chapters": [{"file": "bad"}]}], {"good"}) == []


def test_kernel_bars_report_to_the_book_process(tiny_book: Path, tmp_path: Path) -> None:
    """Inside `lhp book` a chapter's bars print nothing into the notebook; their state reaches the status file."""
    from lhp_core import progress

    _notebook(tiny_book / "book" / "staged.ipynb", [
        ("parameters", COMMON),
        ("", ("import os\nfrom lhp_core import progress\n"
             "b = progress.bar(total=10, desc='sweep', unit='ckpt', interval=0)\nb.update(3)")),
        ("", "from lhp_core.book import record\nrecord(status=open(os.environ[progress.STATUS_VAR]).read())"),
    ])
    with progress.reporting_to(tmp_path / "staged.status"):
        out = book.execute_chapter("staged", "ci", tmp_path / "exec", root=tiny_book)
    assert book.read_record(out)["status"] == "sweep: 3/10 ckpt (30%), 00:00 elapsed"
    assert [o.output_type for o in nbformat.read(out, as_version=4).cells[2].outputs] == ["execute_result"]  # no stream


#: Non-blank code lines of the six chapters before they became library calls (issue: at least halve them).
CHAPTER_CODE_LINES_BEFORE = 885


def test_chapters_are_parameters_library_calls_and_a_record() -> None:
    """Decisions, loops and widgets live in the library: a chapter's code defines nothing, loops over
    nothing and builds no widget by hand; and the chapters together are less than half their old length."""
    import ast

    total = 0
    for chapter in book.chapters(ROOT):
        nb = nbformat.read(ROOT / "book" / f"{chapter}.ipynb", as_version=4)
        for cell in (c for c in nb.cells if c.cell_type == "code"):
            total += sum(1 for line in cell.source.splitlines() if line.strip())
            tree = ast.parse(cell.source)
            for node in ast.walk(tree):
                assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)), \
                    f"{chapter}.ipynb defines a function or class: move it into lhp_core"
                assert not isinstance(node, (ast.For, ast.AsyncFor, ast.While, ast.comprehension)), \
                    f"{chapter}.ipynb loops in a cell: loops over steps or models belong in lhp_core"
            assert "ipywidgets" not in cell.source and ".observe(" not in cell.source, \
                f"{chapter}.ipynb wires widgets by hand: use lhp_core.viz inspectors"
            tags = cell.metadata.get("tags", [])
            assert "parameters" in tags or {"hide-input", "remove-cell"} & set(tags), \
                f"{chapter}.ipynb: a code cell shows its input; tag it hide-input (folded in the page)"
    assert total <= CHAPTER_CODE_LINES_BEFORE // 2, \
        f"{total} chapter code lines; at most {CHAPTER_CODE_LINES_BEFORE // 2}"


def test_intro_holds_the_generated_findings_table_marker() -> None:
    assert book.FINDINGS_MARKER in (ROOT / "book" / "intro.md").read_text()


def test_findings_table_comes_from_the_records(tiny_book: Path, tmp_path: Path) -> None:
    """The intro's table is built from executed chapters' records: change a record, the row changes."""
    from lhp_core import findings

    f = findings.Finding("tiny_claim", "a tiny claim", "Someone 2024", "x = 1.00 [0.90, 1.10]", "lhp-tiny", "holds")
    nb = tiny_book / "book" / "good.ipynb"
    doc = nbformat.read(nb, as_version=4)
    doc.cells[-1].source = doc.cells[-1].source.replace(
        "record(", f"record(**{findings.to_record([f])!r}, ")
    nbformat.write(doc, nb)
    out = tmp_path / "out"
    book.execute_chapter("good", "ci", out, root=tiny_book)
    table = book.findings_table({"good": out / "good.ipynb"})
    assert "| a tiny claim (Someone 2024) ({doc}`good`) | x = 1.00 [0.90, 1.10] | lhp-tiny | **holds** |" in table
    # A copy with another verdict gives another row: the table is read from the record, not typed.
    doc = nbformat.read(out / "good.ipynb", as_version=4)
    for cell in doc.cells:
        for o in cell.get("outputs", []):
            if book.RECORD_MIMETYPE in o.get("data", {}):
                o["data"][book.RECORD_MIMETYPE]["finding_tiny_claim_verdict"] = "contradicted"
    nbformat.write(doc, tmp_path / "copy.ipynb")
    changed = book.findings_table({"good": tmp_path / "copy.ipynb"})
    assert "**contradicted**" in changed and "**holds**" not in changed
    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / "intro.md").write_text(f"# x\n\n{book.FINDINGS_MARKER}\n")
    book.write_findings(stage, {"good": tmp_path / "copy.ipynb"})
    assert "**contradicted**" in (stage / "intro.md").read_text()
    with pytest.raises(ValueError, match="verdict"):
        findings.Finding("x", "c", "s", "m", "suite", "maybe")


def test_studies_run_with_their_chapters_defaults() -> None:
    """A contributor called with its profile's parameters only (the Timeline) computes what its chapter did:
    every parameter the profile leaves out has the same default in the study's `run` and the chapter's cell."""
    import ast
    import inspect

    from lhp_core.studies import timeline

    for name, c in timeline.contributors().items():
        nb = nbformat.read(ROOT / "book" / f"{c.chapter}.ipynb", as_version=4)
        cell = next(x for x in nb.cells if "parameters" in x.metadata.get("tags", []))
        defaults = {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(cell.source).body
                    if isinstance(n, ast.Assign)}
        for profile in book.PROFILES:
            given = lhp_profiles.parameters(profile, c.chapter)
            for key, p in inspect.signature(c.run).parameters.items():
                if key in defaults and key not in given:
                    assert p.default == defaults[key], (f"{name}: run({key}={p.default!r}) but {c.chapter}.ipynb "
                                                        f"sets {defaults[key]!r} and profile {profile} does not")


def test_profile_precision_reaches_the_kernels_and_is_checked(tmp_path, monkeypatch):
    from lhp_core import checkpoints, config

    assert set(config.DTYPE_NAMES) == set(checkpoints.DTYPES)
    monkeypatch.delenv("LHP_DTYPE", raising=False)
    assert config.default_dtype() == "float32"
    monkeypatch.setenv("LHP_DTYPE", "fp8")
    with pytest.raises(ValueError, match="LHP_DTYPE='fp8' is not a precision lhp runs in; set it to one of"):
        config.default_dtype()
    assert book.kernel_environment(1, "bfloat16")["LHP_DTYPE"] == "bfloat16"
    assert "LHP_DTYPE" not in book.kernel_environment(1)
    assert lhp_profiles.load()["pythia"]["dtype"] == "bfloat16"
    bad = tmp_path / "profiles.yml"
    bad.write_text("x:\n  dtype: float64\n  common: {suite: lhp-micro, models: null, steps: null, device: cpu}\n")
    with pytest.raises(lhp_profiles.ProfileError, match="dtype 'float64' is not a precision lhp runs in"):
        lhp_profiles.load(bad)
    common = {"suite": "pythia", "models": None, "steps": None, "device": "cuda"}
    assert book.built_on("pythia", common, "bfloat16").endswith("on `cuda` in bfloat16.")


def test_using_dtype_sets_and_restores_the_default(monkeypatch):
    from lhp_core import config

    monkeypatch.setenv("LHP_DTYPE", "float16")
    with config.using_dtype("bfloat16"):
        assert config.default_dtype() == "bfloat16"
    assert config.default_dtype() == "float16"
    with config.using_dtype(None):
        assert config.default_dtype() == "float16"
    monkeypatch.delenv("LHP_DTYPE")
    with pytest.raises(ValueError, match="not a precision lhp runs in"), config.using_dtype("int8"):
        pass
    assert config.default_dtype() == "float32"


def test_suite_options_are_checked_before_the_chapters_and_reach_their_kernels(tmp_path, monkeypatch):
    """A Trainer run that logged no token counts (the Trainer's default): ``lhp book --suite RUN`` is refused
    before any chapter with the flag that fixes it, and with ``--seq-len`` every kernel reads the suite so."""
    import argparse

    from lhp_core.suites import get_suite
    from tests.checkpoint_folders import trainer_folder

    monkeypatch.delenv("LHP_SUITE_OPTIONS", raising=False)
    root = trainer_folder(tmp_path / "run", {8: None, 16: None}, train_batch_size=4, gradient_accumulation_steps=2)
    with pytest.raises(book.BookError, match=r"^--suite .*run: tokens seen by .* pass --seq-len N \(tokens per"):
        book._suite_override(str(root), None, None)
    moved = book._suite_override(str(root), None, None, {"sequence_length": 128, "tokens_per_step": None})
    assert moved == {"suite": str(root), "models": None, "steps": None, "options": {"sequence_length": 128}}
    env = book.kernel_environment(1, None, moved)
    monkeypatch.setenv("LHP_SUITE_OPTIONS", env["LHP_SUITE_OPTIONS"])
    assert get_suite(moved["suite"]).tokens_seen("run", 16) == 16 * 4 * 2 * 128
    assert "LHP_SUITE_OPTIONS" not in book.kernel_environment(1, None, {"suite": "pythia", "options": {}})
    common = {"suite": moved["suite"], "models": None, "steps": None, "device": "cpu"}
    assert f"**{root}** (--seq-len 128; every model; every checkpoint)" in book.built_on("ci", common, None,
                                                                                         moved["options"])
    with pytest.raises(book.BookError, match=r"^--seq-len only applies with --suite; pass --suite ID_OR_PATH too"):
        book._suite_override(None, None, None, {"sequence_length": 128})
    monkeypatch.chdir(tmp_path)  # the kernels run in book/: a folder given relative is passed on absolute
    assert book._suite_override("run", None, None, {"sequence_length": 128})["suite"] == str(root)

    parser = argparse.ArgumentParser()
    book.configure(parser)
    seen = {}
    monkeypatch.setattr(book, "build_book", lambda *a, **kw: seen.update(kw) or book.BookRun(profile="ci"))
    monkeypatch.setattr(book, "summary", lambda run: "")
    book.run(parser.parse_args(["--profile", "ci", "--suite", "run", "--seq-len", "128", "--world-size", "2"]))
    assert seen["suite"] == "run" and seen["suite_options"] == {"tokens_per_step": None, "revisions": None,
                                                                "sequence_length": 128, "world_size": 2}
