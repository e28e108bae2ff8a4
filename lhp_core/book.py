"""``lhp book``: execute the book's chapters with papermill, then build the HTML.

The book is Jupyter Book 1 (Sphinx). Its configuration is ``_config.yml`` at the
repository root, its table of contents ``book/_toc.yml`` and its run sizes
``book/profiles.yml``. Jupyter Book's own execution is switched off: every chapter
is executed here first, by papermill, with the parameters of one *profile*:

``ci``       tiny, CPU, suite ``lhp-micro`` (what the tests run)
``default``  the embedded default, CPU, suite ``lhp-mini``
``gpu``      suite ``lhp-gpu`` on ``cuda``

``book/profiles.yml`` holds, per profile, ``common`` parameters passed to every
chapter (``suite``, ``models``, ``steps``, ``device``) and ``chapters``: per-chapter
overrides (sample sizes and the like). Executed notebooks land in
``_build/executed/`` next to copies of the book's other source files; the HTML goes
to ``_build/html/``.

Records
-------
A chapter's last cell calls :func:`record` with flat key numbers; the call emits a
display output with the mimetype :data:`RECORD_MIMETYPE`, which papermill saves in
the executed notebook. :func:`read_record` reads them back, so tests assert on what
a chapter actually computed::

    record(final_val_loss=3.21, n_models=3)          # in the chapter
    read_record("_build/executed/suite.ipynb")       # in a test -> {"final_val_loss": 3.21, ...}
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from lhp_core.config import pin_paths

RECORD_MIMETYPE = "application/vnd.lhp.record+json"
PROFILES = ("ci", "default", "gpu")
COMMON_KEYS = ("suite", "models", "steps", "device")
#: Files and folders of ``book/`` that are never copied into the build folder.
_SKIP = {"_build", "_executed", ".ipynb_checkpoints", "profiles.yml", "__pycache__"}


class BookError(RuntimeError):
    """A chapter failed, or the book's configuration is inconsistent."""


# --------------------------------------------------------------------------- paths


def repo_root() -> Path:
    """The folder holding ``_config.yml`` and ``book/`` (the source checkout)."""
    here = Path(__file__).resolve().parents[1]
    for candidate in (Path.cwd(), *Path.cwd().parents, here):
        if (candidate / "_config.yml").is_file() and (candidate / "book" / "_toc.yml").is_file():
            return candidate
    raise BookError(
        "cannot find the book sources (_config.yml and book/_toc.yml); run `lhp book` from the "
        "lhp repository checkout, or pass --root"
    )


# ------------------------------------------------------------------------ records


def _flat_value(key: str, value: Any) -> int | float | str | bool:
    if isinstance(value, bool) or isinstance(value, str):
        return value
    # numpy and torch scalars both have .item(); arrays with >1 element raise below.
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            raise TypeError(
                f"record({key}=...) got an array; record flat numbers only (e.g. {key}=float(x.mean()))"
            ) from None
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            # JSON has no NaN; keep the fact that it was not finite visible to tests.
            return str(value)
        return value
    raise TypeError(
        f"record({key}=...) got {type(value).__name__}; record() takes flat numbers and strings only"
    )


def record(**numbers: Any) -> dict[str, int | float | str | bool]:
    """Store a chapter's key numbers in its executed notebook.

    Call it in the chapter's last cell. In a Jupyter kernel the numbers are emitted as a
    display output of mimetype :data:`RECORD_MIMETYPE` (invisible in the HTML); outside a
    kernel the call just validates and returns them.

    Parameters
    ----------
    **numbers
        Flat values: ``int``, ``float``, ``bool``, ``str`` or 0-d numpy / torch scalars.
        Non-finite floats are stored as the strings ``"nan"`` / ``"inf"``.

    Returns
    -------
    dict
        The values as stored.
    """
    if not numbers:
        raise ValueError("record() needs at least one key=value pair")
    data = {k: _flat_value(k, v) for k, v in numbers.items()}
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        return data
    if get_ipython() is not None:
        display({RECORD_MIMETYPE: data, "text/plain": f"lhp record: {len(data)} values"}, raw=True)
    return data


def read_record(path: str | Path) -> dict[str, int | float | str | bool]:
    """Read the numbers a chapter stored with :func:`record` from an executed notebook.

    Parameters
    ----------
    path
        An executed ``.ipynb``.

    Returns
    -------
    dict
        All recorded values; later ``record`` calls override earlier keys.
    """
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; execute the chapter first (lhp book --profile ci --no-build)")
    nb = nbformat.read(path, as_version=4)
    out: dict[str, Any] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if RECORD_MIMETYPE in data:
                out.update(data[RECORD_MIMETYPE])
    if not out:
        raise BookError(
            f"{path} holds no record; its last cell should call lhp_core.book.record(name=value, ...)"
        )
    return out


# ----------------------------------------------------------------------- profiles


def load_profiles(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Read ``book/profiles.yml`` and check its shape."""
    path = Path(path) if path is not None else repo_root() / "book" / "profiles.yml"
    profiles = yaml.safe_load(path.read_text())
    if not isinstance(profiles, dict):
        raise BookError(f"{path} must map profile names ({', '.join(PROFILES)}) to settings")
    for name, prof in profiles.items():
        missing = [k for k in COMMON_KEYS if k not in (prof or {}).get("common", {})]
        if missing:
            raise BookError(f"{path}: profile {name!r} lacks common parameters {missing}")
        chapters = prof.get("chapters") or {}
        if not isinstance(chapters, dict):
            raise BookError(f"{path}: profile {name!r}: 'chapters' must map chapter names to parameter dicts")
    return profiles


def chapter_parameters(profile: str, chapter: str, profiles: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The papermill parameters for one chapter: the profile's common ones plus overrides.

    Parameters
    ----------
    profile
        ``ci``, ``default`` or ``gpu`` (any name in ``profiles.yml``).
    chapter
        Notebook name without suffix, e.g. ``"suite"``.
    """
    profiles = load_profiles() if profiles is None else profiles
    if profile not in profiles:
        raise BookError(f"unknown profile {profile!r}; valid profiles: {', '.join(profiles)}")
    prof = profiles[profile]
    params = dict(prof["common"])
    params.update((prof.get("chapters") or {}).get(chapter) or {})
    params["profile"] = profile
    return params


# -------------------------------------------------------------------------- table of contents


def _toc_files(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    files: list[str] = []
    for entry in entries:
        if "file" in entry:
            files.append(str(entry["file"]))
        for key in ("sections", "chapters"):
            files += _toc_files(entry.get(key) or [])
        for part in entry.get("parts") or []:
            files += _toc_files(part.get("chapters") or [])
    return files


def toc_files(root: Path | None = None) -> list[str]:
    """Every document listed in ``book/_toc.yml`` (root first), without suffix."""
    root = root or repo_root()
    toc = yaml.safe_load((root / "book" / "_toc.yml").read_text())
    return [toc["root"], *_toc_files(toc.get("chapters") or []), *_toc_files(toc.get("parts") or [])]


def chapters(root: Path | None = None) -> list[str]:
    """The notebook chapters listed in the table of contents, in order."""
    root = root or repo_root()
    return [f for f in toc_files(root) if (root / "book" / f"{f}.ipynb").is_file()]


# --------------------------------------------------------------------------- running

#: Thread-pool sizes a chapter's kernel inherits (torch, OpenBLAS, MKL, OpenMP).
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class BookRun:
    """What :func:`build_book` did: executed notebooks, HTML folder, seconds per chapter."""

    profile: str
    executed: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    html: Path | None = None


def suites_needed(profile: str, todo: Iterable[str], profiles: Mapping[str, Any]) -> list[str]:
    """Suite ids the chapters in ``todo`` read: the profile's ``suite`` and every ``*_suite`` parameter."""
    ids = [str(profiles[profile]["common"]["suite"])]
    for chapter in todo:
        for key, value in chapter_parameters(profile, chapter, profiles).items():
            if key.endswith("_suite") and isinstance(value, str) and value:
                ids.append(value)
    return list(dict.fromkeys(ids))


def _ensure_suites(ids: list[str], device: str = "cpu") -> None:
    from lhp_core import train

    # Training missing lhp suites happens here, once and side by side, rather than inside a chapter's kernel.
    print(f"[lhp book] suites: {', '.join(ids)} (training any that are missing)", flush=True)
    train.ensure_all(ids, device=device)


def execute_chapter(
    chapter: str,
    profile: str,
    out_dir: Path,
    root: Path | None = None,
    profiles: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Execute ``book/<chapter>.ipynb`` with the profile's parameters into ``out_dir``.

    Raises
    ------
    BookError
        Naming the notebook, the failing cell and the exception, if a cell raises.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    pin_paths()  # the kernel runs in book/: a relative LHP_DATA_MIRROR must keep naming the caller's folder
    root = root or repo_root()
    src = root / "book" / f"{chapter}.ipynb"
    if not src.is_file():
        raise BookError(f"chapter {chapter!r} not found: {src} does not exist (chapters: {', '.join(chapters(root))})")
    dst = Path(out_dir) / f"{chapter}.ipynb"
    dst.parent.mkdir(parents=True, exist_ok=True)
    if profiles is None:
        profiles = load_profiles(root / "book" / "profiles.yml")
    params = chapter_parameters(profile, chapter, profiles)
    try:
        papermill.execute_notebook(
            str(src),
            str(dst),
            parameters=params,
            kernel_name="python3",
            cwd=str(root / "book"),
            progress_bar=progress,
        )
    except PapermillExecutionError as err:
        first = (err.source or "").strip().splitlines()
        raise BookError(
            f"chapter {src.relative_to(root)} failed in cell {_source_cell_number(dst, err.cell_index)} "
            f"(In [{err.exec_count}] of the executed copy) "
            f"starting {first[0] if first else ''!r}: {err.ename}: {err.evalue}\n"
            f"the executed notebook with the full traceback is {dst}"
        ) from None
    return dst


def _execute_with_threads(job: tuple[str, str, Path, Path, int]) -> tuple[str, Path, float]:
    """Worker: execute one chapter whose kernel gets ``threads`` threads per pool; returns seconds taken."""
    chapter, profile, stage, root, threads = job
    # Kernels inherit this process's environment; each worker is its own process, so this is local.
    os.environ.update({v: str(threads) for v in THREAD_VARS})
    start = time.perf_counter()
    path = execute_chapter(chapter, profile, stage, root, progress=False)
    return chapter, path, time.perf_counter() - start


def _execute_all(todo: list[str], profile: str, stage: Path, root: Path, jobs: int, run: BookRun,
                 profiles: Mapping[str, Any], progress: bool) -> None:
    """Execute chapters ``jobs`` at a time, each kernel with ``cores // jobs`` threads.

    The chapters' models are small: a kernel gains little from a second thread, and two kernels
    sharing two cores with two threads each spin against each other, so side by side with one
    thread each is the fast way through the book on a small CPU machine.
    """
    threads = max(1, (os.cpu_count() or 1) // jobs)
    if jobs == 1:
        from unittest import mock

        # The kernel inherits the environment at launch; patch.dict restores the caller's afterwards.
        with mock.patch.dict(os.environ, {v: str(threads) for v in THREAD_VARS}):
            for chapter in todo:
                print(f"[lhp book] executing {chapter}.ipynb ({profile})", flush=True)
                start = time.perf_counter()
                run.executed[chapter] = execute_chapter(chapter, profile, stage, root, profiles, progress)
                run.seconds[chapter] = time.perf_counter() - start
                print(f"[lhp book] {chapter}.ipynb done in {run.seconds[chapter]:.1f} s", flush=True)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    print(f"[lhp book] executing {', '.join(todo)} ({profile}), {jobs} at a time with {threads} thread(s) each",
          flush=True)
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_execute_with_threads, (c, profile, stage, root, threads)) for c in todo]
        for fut in as_completed(futures):
            if fut.exception() is not None:
                for other in futures:
                    other.cancel()  # chapters not started yet; running ones finish on their own
                raise fut.exception()
            chapter, path, seconds = fut.result()
            run.executed[chapter], run.seconds[chapter] = path, seconds
            print(f"[lhp book] {chapter}.ipynb done in {seconds:.1f} s", flush=True)


def _source_cell_number(executed: Path, index: int) -> int:
    """1-based number of the failing cell in the *source* notebook (papermill inserts a cell)."""
    import nbformat

    try:
        cells = nbformat.read(executed, as_version=4).cells
    except Exception:  # a half-written notebook: fall back to the executed index
        return index + 1
    injected = [i for i, c in enumerate(cells) if "injected-parameters" in c.metadata.get("tags", [])]
    return index + (0 if injected and injected[0] < index else 1)


def _stage_sources(root: Path, stage: Path) -> None:
    """Copy config, toc and non-notebook sources of ``book/`` beside the executed notebooks."""
    stage.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "_config.yml", stage / "_config.yml")
    for item in (root / "book").iterdir():
        if item.name in _SKIP or item.suffix == ".ipynb":
            continue
        target = stage / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)


def build_html(stage: Path, out: Path) -> Path:
    """Run ``jupyter-book build`` on the staged, executed sources; returns the HTML folder."""
    # Through the interpreter running lhp, so the book builds with the same environment.
    cmd = [
        sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
        "build", str(stage), "--path-output", str(out), "--builder", "html", "--all", "--quiet",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BookError(
            f"jupyter-book build of {stage} failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    html = out / "_build" / "html"
    if not (html / "index.html").is_file():
        raise BookError(f"jupyter-book finished but {html / 'index.html'} is missing:\n{proc.stdout[-2000:]}")
    return html


def build_book(
    profile: str = "ci",
    only: str | None = None,
    build: bool = True,
    root: Path | None = None,
    out: Path | None = None,
    progress: bool = True,
    jobs: int | None = None,
) -> BookRun:
    """Execute every chapter (or ``only`` one) at ``profile`` size, then build the HTML.

    Parameters
    ----------
    profile
        A profile of ``book/profiles.yml``.
    only
        Execute just this chapter (the HTML build then uses whatever else is already
        executed in ``out/executed``).
    build
        Build the HTML with jupyter-book after executing.
    out
        Build folder (default ``<root>/_build``): notebooks go to ``out/executed``, HTML to
        ``out/html``.
    jobs
        Chapters executed side by side (default: one per CPU core, at most one per chapter);
        each kernel gets ``cores // jobs`` threads.
    """
    pin_paths()  # before training processes and kernels (in book/) inherit the environment
    root = root or repo_root()
    out = Path(out) if out is not None else root / "_build"
    profiles = load_profiles(root / "book" / "profiles.yml")
    if profile not in profiles:
        raise BookError(f"unknown profile {profile!r}; valid profiles: {', '.join(profiles)}")
    todo = chapters(root)
    if only is not None:
        only = Path(only).stem
        if only not in todo:
            raise BookError(f"--only {only!r} is not a chapter of book/_toc.yml; chapters: {', '.join(todo)}")
        todo = [only]
    run = BookRun(profile=profile)
    stage = out / "executed"
    _ensure_suites(suites_needed(profile, todo, profiles), str(profiles[profile]["common"]["device"]))
    # Side by side, the longest chapters should start first; a profile may say which they are.
    first = list(profiles[profile].get("start_first") or [])
    start_order = sorted(todo, key=lambda c: first.index(c) if c in first else len(first))
    jobs = min(os.cpu_count() or 1, len(todo)) if jobs is None else jobs
    if jobs < 1:
        raise BookError(f"--jobs must be >= 1, got {jobs}")
    _execute_all(start_order, profile, stage, root, min(jobs, len(todo)), run, profiles, progress)
    run.executed = {c: run.executed[c] for c in todo}  # toc order, whatever order they ran in
    if build:
        missing = [c for c in chapters(root) if not (stage / f"{c}.ipynb").is_file()]
        if missing:
            raise BookError(
                f"cannot build the HTML: chapters {missing} were never executed into {stage}; "
                f"run `lhp book --profile {profile}` without --only"
            )
        _stage_sources(root, stage)
        built = build_html(stage, out)
        # jupyter-book writes to <out>/_build/html; give it the stable, documented name.
        final = out / "html"
        if final.exists():
            shutil.rmtree(final)
        shutil.move(str(built), str(final))
        shutil.rmtree(out / "_build", ignore_errors=True)
        run.html = final
        print(f"[lhp book] HTML: {final / 'index.html'}", flush=True)
    return run


# --------------------------------------------------------------------------- CLI


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="default", choices=PROFILES, help="run size (book/profiles.yml)")
    parser.add_argument("--only", metavar="CHAPTER", help="execute only this chapter, e.g. suite")
    parser.add_argument("--no-build", action="store_true", help="execute the notebooks but do not build the HTML")
    parser.add_argument("--out", type=Path, help="build folder (default <repo>/_build)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="chapters executed side by side (default: one per CPU core)")


def run(args: argparse.Namespace) -> int:
    try:
        result = build_book(args.profile, only=args.only, build=not args.no_build, out=args.out, jobs=args.jobs)
    except BookError as err:
        print(f"lhp book: {err}", file=sys.stderr)
        return 1
    total = sum(result.seconds.values())
    print(f"[lhp book] {len(result.executed)} chapter(s) executed in {total:.0f} s", flush=True)
    return 0
