"""``lhp book``: execute the book's chapters with papermill, then build the HTML.

The book is Jupyter Book 1 (Sphinx). Its configuration is ``_config.yml`` at the
repository root, its table of contents ``book/_toc.yml`` and its run sizes
``book/profiles.yml``. Jupyter Book's own execution is switched off: every chapter
is executed here first, by papermill, with the parameters of one *profile*:

``ci``       tiny, CPU, suite ``lhp-micro`` (what the tests run)
``default``  the embedded default, CPU, suite ``lhp-mini``
``gpu``      suite ``lhp-gpu`` on ``cuda``
``pythia``   Pythia 70m, 160m and 410m from the hub, 20 revisions, on ``cuda``

``lhp book --suite ID_OR_PATH [--models ...] [--steps ...]`` runs every chapter on another
suite (any kind ``lhp_core.suites.get_suite`` takes) at the profile's sizes
(:func:`lhp_core.profiles.on_suite`); the suite options of ``lhp suite show`` (``--seq-len``,
``--tokens-per-step``, ...) reach every chapter's kernel as ``LHP_SUITE_OPTIONS``.

``book/profiles.yml`` holds, per profile, ``common`` parameters passed to every
chapter (``suite``, ``models``, ``steps``, ``device``) and ``chapters``: per-chapter
overrides (sample sizes and the like). A chapter's ``parameters`` cell must declare
every parameter it is given; ``profile`` is passed only where declared
(:func:`injected_parameters`). Executed notebooks land in ``_build/executed/`` next to
copies of the book's other source files; the HTML goes to ``_build/html/``.

Output
------
Chapters run in worker processes, their kernels over IPC sockets with
:func:`kernel_environment` (``LHP_BOOK_RUN=1``: :mod:`lhp_core.progress` bars print nothing
into the notebook and report to this process instead; inspectors draw static views). This
process shows one display (:class:`lhp_core.progress.Monitor`): each chapter as it finishes
(k/n) and, while chapters run, a heartbeat with their elapsed time and latest progress,
every 30 s when the output is a file. The last line is :func:`summary`. A chapter that
still leaves widget state (its page would load require.js from a CDN) is named in a warning.

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
import contextlib
import json
import math
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import nbformat
import papermill
import yaml
from huggingface_hub import try_to_load_from_cache
from IPython import get_ipython
from IPython.display import display
from papermill.exceptions import PapermillExecutionError
from traitlets.config import Config

from lhp_core import findings, train
from lhp_core.cli.suite import add_suite_options
from lhp_core.config import DTYPE_VAR, SUITE_OPTIONS_VAR, pin_paths
from lhp_core.profiles import ProfileError, on_suite, repo_root
from lhp_core.profiles import load as load_profiles
from lhp_core.profiles import parameters as profiles_parameters
from lhp_core.progress import BOOK_RUN_VAR, Monitor, reporting_to
from lhp_core.suites import OPTION_FLAGS, SUITES, SuiteError, get_suite

RECORD_MIMETYPE = "application/vnd.lhp.record+json"
PROFILES = ("ci", "default", "gpu", "pythia")
#: Parameters passed only to chapters whose parameters cell declares them.
OPTIONAL_KEYS = ("profile",)
#: Files and folders of ``book/`` that are never copied into the build folder.
_SKIP = {"_build", "_executed", ".ipynb_checkpoints", "profiles.yml", "__pycache__"}


class BookError(ProfileError):
    """A chapter failed, or the book's configuration is inconsistent (:class:`ProfileError`, the base, is
    raised where ``book/profiles.yml`` is)."""


# ------------------------------------------------------------------------ records


def _flat_value(key: str, value: Any) -> int | float | str | bool:
    if isinstance(value, (bool, str)):
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


def chapter_parameters(profile: str, chapter: str, profiles: Mapping[str, Any] | None = None,
                       suite: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The papermill parameters for one chapter: the profile's common ones plus overrides.

    Parameters
    ----------
    profile
        ``ci``, ``default``, ``gpu`` or ``pythia`` (any name in ``profiles.yml``).
    chapter
        Notebook name without suffix, e.g. ``"suite"``.
    suite
        ``lhp book --suite``: ``{"suite": ..., "models": ..., "steps": ...}``
        (:func:`lhp_core.profiles.on_suite`).
    """
    params = profiles_parameters(profile, chapter, profiles, suite=suite)
    params["profile"] = profile
    return params


def injected_parameters(notebook: str | Path, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters papermill injects into ``notebook``: those its ``parameters`` cell declares.

    ``profile`` goes only to chapters that declare it (a chapter that does not use it need not
    name it). Any other parameter the cell does not declare is an error, not a value the chapter
    silently never reads: a typo in ``book/profiles.yml``, or a default missing from the chapter.

    Parameters
    ----------
    notebook
        The source ``.ipynb``.
    params
        What :func:`chapter_parameters` gives for it.
    """
    declared = set(papermill.inspect_notebook(str(notebook)))
    undeclared = [k for k in params if k not in declared and k not in OPTIONAL_KEYS]
    if undeclared:
        raise BookError(
            f"{Path(notebook).name}: book/profiles.yml passes {undeclared}, which its parameters cell does not "
            f"declare; give each a default there (e.g. `{undeclared[0]} = ...` in the cell tagged 'parameters') "
            "or remove it from book/profiles.yml"
        )
    return {k: v for k, v in params.items() if k in declared}


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
#: Widget-state mimetype nbclient stores in an executed notebook's metadata.
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


@dataclass
class BookRun:
    """What :func:`build_book` did: executed notebooks, HTML folder, seconds per chapter and in all."""

    profile: str
    executed: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    html: Path | None = None
    #: Chapters executed side by side.
    jobs: int = 1
    #: Wall time of executing the chapters (less than the sum of ``seconds`` when ``jobs > 1``).
    wall_seconds: float = 0.0
    #: Wall time of the whole run: training missing suites, the chapters, the HTML build.
    total_seconds: float = 0.0


def summary(run: BookRun) -> str:
    """The closing line of ``lhp book``: chapters, wall time, chapter time, how many at a time."""
    n = len(run.seconds)
    line = (f"{n} chapter{'' if n == 1 else 's'} in {run.wall_seconds:.0f} s wall time "
            f"({sum(run.seconds.values()):.0f} s of chapter time, {run.jobs} at a time)")
    if run.total_seconds > run.wall_seconds:
        line += f"; {run.total_seconds:.0f} s in all with training and the HTML build"
    return line


def suites_needed(profile: str, todo: Iterable[str], profiles: Mapping[str, Any],
                  suite: Mapping[str, Any] | None = None) -> list[str]:
    """Suite ids the chapters in ``todo`` read: the profile's ``suite`` (or ``suite``'s) and every ``*_suite``
    parameter."""
    ids = [str(on_suite(profiles[profile]["common"], suite)["suite"])]
    for chapter in todo:
        for key, value in chapter_parameters(profile, chapter, profiles, suite).items():
            if key.endswith("_suite") and isinstance(value, str) and value:
                ids.append(value)
    return list(dict.fromkeys(ids))


def _ensure_suites(ids: list[str], device: str, show: bool) -> None:
    # Training missing lhp suites happens here, once and side by side, rather than inside a chapter's kernel.
    start = time.perf_counter()
    if show:
        print(f"[lhp book] suites: {', '.join(ids)} (training any that are missing)", flush=True)
    train.ensure_all(ids, device=device, progress=show)
    if show:
        print(f"[lhp book] suites ready in {time.perf_counter() - start:.0f} s", flush=True)


def kernel_environment(threads: int | None = None, dtype: str | None = None,
                       suite: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Environment variables a chapter's kernel gets from ``lhp book``.

    ``LHP_BOOK_RUN=1`` makes :mod:`lhp_core.progress` bars print nothing into the notebook
    and :mod:`lhp_core.viz.inspectors` draw static views instead of widgets; Hugging Face's
    own download and loading bars (notebook widgets in a kernel) are switched off; ``threads``
    sets :data:`THREAD_VARS`; ``dtype`` (a profile's precision) sets ``LHP_DTYPE``, the precision
    every measure runs in where the chapter names none (:func:`lhp_core.config.default_dtype`);
    ``suite`` (``lhp book --suite`` with ``options``, :func:`_suite_override`) sets ``LHP_SUITE_OPTIONS``,
    so every study reads the suite as the command line described it (:func:`lhp_core.config.suite_options`).
    """
    env = {BOOK_RUN_VAR: "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    if suite and suite.get("options"):
        env[SUITE_OPTIONS_VAR] = json.dumps({str(suite["suite"]): dict(suite["options"])})
    if threads is not None:
        env.update({v: str(threads) for v in THREAD_VARS})
    if dtype is not None:
        env[DTYPE_VAR] = dtype
    return env


def _kernel_config(sockets: str) -> Any:
    """Kernel connection over IPC sockets in the private folder ``sockets``, not TCP on localhost.

    Over TCP anyone on the machine may connect, and ipykernel warns about it ("Kernel is running
    over TCP without encryption"); Windows has no IPC transport and keeps TCP.
    """
    if os.name == "nt":
        return Config()
    return Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "kernel")}})


def execute_chapter(
    chapter: str,
    profile: str,
    out_dir: Path,
    root: Path | None = None,
    profiles: Mapping[str, Any] | None = None,
    threads: int | None = None,
    suite: Mapping[str, Any] | None = None,
) -> Path:
    """Execute ``book/<chapter>.ipynb`` with the profile's parameters into ``out_dir``.

    The kernel runs with :func:`kernel_environment` (``threads`` threads per pool, if given)
    and gets the parameters its parameters cell declares (:func:`injected_parameters`), moved onto
    ``suite`` where given (:func:`on_suite`).

    Raises
    ------
    BookError
        Naming the notebook, the failing cell and the exception, if a cell raises.
    """
    pin_paths()  # the kernel runs in book/: a relative LHP_DATA_MIRROR must keep naming the caller's folder
    root = root or repo_root()
    src = root / "book" / f"{chapter}.ipynb"
    if not src.is_file():
        raise BookError(f"chapter {chapter!r} not found: {src} does not exist (chapters: {', '.join(chapters(root))})")
    dst = Path(out_dir) / f"{chapter}.ipynb"
    dst.parent.mkdir(parents=True, exist_ok=True)
    if profiles is None:
        profiles = load_profiles(root / "book" / "profiles.yml")
    params = injected_parameters(src, chapter_parameters(profile, chapter, profiles, suite))
    # The kernel inherits the environment at launch; patch.dict restores the caller's afterwards.
    with mock.patch.dict(os.environ, kernel_environment(threads, profiles[profile].get("dtype"), suite)), \
            tempfile.TemporaryDirectory(prefix="lhp-kernel-") as sockets:
        try:
            papermill.execute_notebook(
                str(src),
                str(dst),
                parameters=params,
                kernel_name="python3",
                cwd=str(root / "book"),
                progress_bar=False,
                config=_kernel_config(sockets),
            )
        except PapermillExecutionError as err:
            first = (err.source or "").strip().splitlines()
            raise BookError(
                f"chapter {src.relative_to(root)} failed in cell {_source_cell_number(dst, err.cell_index)} "
                f"(In [{err.exec_count}] of the executed copy) "
                f"starting {first[0] if first else ''!r}: {err.ename}: {err.evalue}\n"
                f"the executed notebook with the full traceback is {dst}"
            ) from None
    _reader_tags(dst)
    return dst


def _reader_tags(executed: Path) -> None:
    """Show the parameters once: the chapter's own defaults cell is left out of the page where papermill
    injected the profile's values after it, and the injected cell shows collapsed (a toggle)."""
    nb = nbformat.read(executed, as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    if not any("injected-parameters" in t for t in tags):
        return
    for cell, t in zip(nb.cells, tags):
        if "parameters" in t and "remove-cell" not in t:
            cell.metadata["tags"] = [*t, "remove-cell"]
        elif "injected-parameters" in t and "hide-input" not in t:
            cell.metadata["tags"] = [*t, "hide-input"]
    nbformat.write(nb, executed)


def widget_models(executed: str | Path) -> dict[str, int]:
    """Widget models whose state an executed notebook holds, with counts (empty: none).

    Saved widget state makes Jupyter Book load require.js and the widget manager from a CDN
    on the chapter's page, so the book is no longer offline; a chapter should hold none.
    """
    nb = nbformat.read(executed, as_version=4)
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    counts: dict[str, int] = {}
    for model in state.values():
        name = model.get("model_name", "?")
        counts[name] = counts.get(name, 0) + 1
    return counts


def _widget_warning(chapter: str, models: Mapping[str, int]) -> str:
    found = ", ".join(f"{n} x{c}" for n, c in sorted(models.items()))
    return (f"warning: {chapter}.ipynb holds widget state ({found}): its page will load require.js and the "
            "widget manager from a CDN. Progress bars: lhp_core.progress.bar, not tqdm.auto; pickers: "
            "lhp_core.viz.inspectors.live with inspectors.dropdown / slider / int_slider, not ipywidgets")


def _execute_job(job: tuple[str, str, Path, Path, int, str | None, dict | None]) -> tuple[str, Path, float]:
    """Worker: execute one chapter, its bars reporting to ``status``; returns seconds taken."""
    chapter, profile, stage, root, threads, status, suite = job
    start = time.perf_counter()
    with reporting_to(status) if status else contextlib.nullcontext():
        path = execute_chapter(chapter, profile, stage, root, threads=threads, suite=suite)
    return chapter, path, time.perf_counter() - start


def _execute_all(groups: list[list[str]], profile: str, stage: Path, root: Path, jobs: int, run: BookRun,
                 show: bool, suite: dict | None = None) -> None:
    """Execute chapters group after group, up to ``jobs`` side by side, each kernel with the cores shared out.

    A later group starts when the one before has finished (the Timeline reads every other chapter's
    cached results). One progress display (:class:`lhp_core.progress.Monitor`) counts all chapters of
    all groups. The chapters' models are small: a kernel gains little from a second thread, and two
    kernels sharing two cores with two threads each spin against each other, so side by side with one
    thread each is the fast way through the book on a small CPU machine. Each chapter runs in a
    worker process (also when ``jobs == 1``), so this process shows the display while the kernels work.
    """
    groups = [g for g in groups if g]
    run.jobs = min(jobs, max(len(g) for g in groups))
    start = time.perf_counter()
    with Monitor("chapters", sum(len(g) for g in groups), prefix="[lhp book]", enabled=show) as mon:
        for group in groups:
            width = min(jobs, len(group))
            threads = max(1, (os.cpu_count() or 1) // width)
            mon.write(f"executing {', '.join(group)} ({profile}), {width} at a time with {threads} thread(s) each")
            # spawn: a forked worker would inherit this process's thread pools.
            with ProcessPoolExecutor(width, mp_context=mp.get_context("spawn")) as pool:
                futures = {pool.submit(_execute_job, (c, profile, stage, root, threads,
                                                      str(mon.status_path(c)) if show else None, suite)): c
                           for c in group}
                for fut in mon.wait(futures):
                    if fut.exception() is not None:
                        for other in futures:
                            other.cancel()  # chapters not started yet; running ones finish on their own
                        mon.write(f"{futures[fut]} failed; waiting for the chapters still running")
                        raise fut.exception()
                    chapter, path, seconds = fut.result()
                    run.executed[chapter], run.seconds[chapter] = path, seconds
                    mon.finished(chapter, seconds)
                    models = widget_models(path)
                    if models:
                        mon.write(_widget_warning(chapter, models))
    run.wall_seconds = time.perf_counter() - start


def _source_cell_number(executed: Path, index: int) -> int:
    """1-based number of the failing cell in the *source* notebook (papermill inserts a cell)."""
    try:
        cells = nbformat.read(executed, as_version=4).cells
    except (OSError, ValueError):  # a half-written notebook: fall back to the executed index
        return index + 1
    injected = [i for i, c in enumerate(cells) if "injected-parameters" in c.metadata.get("tags", [])]
    return index + (0 if injected and injected[0] < index else 1)


def _keep_files(entries: list[Any], keep: set[str]) -> list[Any]:
    """Toc entries whose ``file`` is in ``keep`` (or that only hold other entries), recursively."""
    out = []
    for entry in entries:
        entry = dict(entry)
        for key in ("sections", "chapters", "parts"):
            if key in entry:
                entry[key] = _keep_files(entry[key] or [], keep)
                if not entry[key]:
                    del entry[key]  # jupyter-book rejects an empty list
        if "file" in entry and str(entry["file"]) not in keep:
            continue
        if "file" in entry or any(k in entry for k in ("sections", "chapters", "parts")):
            out.append(entry)
    return out


def _stage_sources(root: Path, stage: Path, executed: set[str], built_on: str = "") -> None:
    """Copy config, toc and non-notebook sources of ``book/`` beside the executed notebooks.

    The staged table of contents lists only the chapters in ``executed`` (and every page that
    is not a chapter), so a book from ``lhp book --only`` builds with the chapters it has.
    """
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
    write_findings(stage, {c: stage / f"{c}.ipynb" for c in chapters(root) if c in executed}, built_on)
    toc = yaml.safe_load((root / "book" / "_toc.yml").read_text())
    keep = (set(toc_files(root)) - set(chapters(root))) | executed
    for key in ("chapters", "parts"):
        if toc.get(key):
            toc[key] = _keep_files(toc[key], keep)
    (stage / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))


#: The line of ``book/intro.md`` that ``lhp book`` replaces with the findings table.
FINDINGS_MARKER = "<!-- findings table: written by lhp book from the executed chapters' records -->"


def findings_table(executed: Mapping[str, Path]) -> str:
    """The "findings at a glance" Markdown table from the records of executed chapters (toc order)."""
    records = {c: read_record(p) for c, p in executed.items() if Path(p).is_file()}
    return findings.markdown_table(findings.from_records(records))


def built_on(profile: str, common: Mapping[str, Any], dtype: str | None = None,
             options: Mapping[str, Any] | None = None) -> str:
    """The title page's line naming the suite, models, steps and precision this build ran on (:func:`on_suite`'s
    common; ``dtype`` the profile's, default float32; ``options`` the suite's, as ``lhp book`` flags)."""
    models = ", ".join(map(str, common["models"])) if common.get("models") else "every model"
    steps = ", ".join(map(str, common["steps"])) if common.get("steps") else "every checkpoint"
    flags = "".join(f"{OPTION_FLAGS[k]} {' '.join(map(str, v)) if isinstance(v, (list, tuple)) else v}; "
                    for k, v in (options or {}).items())
    return (f"This build ran every chapter on the suite **{common['suite']}** ({flags}{models}; {steps}) at the "
            f"`{profile}` profile's sizes, on `{common['device']}` in {dtype or 'float32'}.")


def write_findings(stage: Path, executed: Mapping[str, Path], built_on: str = "") -> None:
    """Put :func:`findings_table` (after ``built_on``, :func:`built_on`'s line) into the staged ``intro.md``
    in place of :data:`FINDINGS_MARKER`."""
    intro = stage / "intro.md"
    if not intro.is_file():
        return
    text = intro.read_text()
    if FINDINGS_MARKER in text:  # a book without the marker has no findings table
        table = findings_table(executed)
        intro.write_text(text.replace(FINDINGS_MARKER, f"{built_on}\n\n{table}" if built_on else table))


def build_html(stage: Path, out: Path) -> Path:
    """Run ``jupyter-book build`` on the staged, executed sources; returns the HTML folder."""
    # Through the interpreter running lhp, so the book builds with the same environment.
    cmd = [
        sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
        "build", str(stage), "--path-output", str(out), "--builder", "html", "--all", "--quiet",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BookError(
            f"jupyter-book build of {stage} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
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
    suite: str | None = None,
    models: list[str] | None = None,
    steps: list[int] | None = None,
    suite_options: Mapping[str, Any] | None = None,
) -> BookRun:
    """Execute every chapter (or ``only`` one) at ``profile`` size, then build the HTML.

    Parameters
    ----------
    profile
        A profile of ``book/profiles.yml``.
    only
        Execute just this chapter; the HTML then holds it and whatever other chapters are
        already executed in ``out/executed`` (the others are left out of its table of contents).
    build
        Build the HTML with jupyter-book after executing.
    out
        Build folder (default ``<root>/_build``): notebooks go to ``out/executed``, HTML to
        ``out/html``.
    progress
        Show training bars and one overall display of the chapters (lines every 30 s when the
        output is not a terminal); False prints nothing but errors.
    jobs
        Chapters executed side by side (default: one per CPU core, at most one per chapter);
        each kernel gets ``cores // jobs`` threads.
    suite, models, steps
        Run every chapter on this suite (any id or path :func:`lhp_core.suites.get_suite` takes),
        these models (ids or sizes the suite resolves) and steps, instead of the profile's
        (:func:`on_suite`). The title page, the findings table and each chapter name it.
    suite_options
        What ``suite`` is where it has no training record (:func:`lhp_core.suites.get_suite`'s options:
        ``tokens_per_step``, ``revisions``, ``sequence_length``, ``world_size``); every chapter reads the
        suite with them (:func:`kernel_environment`).
    """
    started = time.perf_counter()
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
    jobs = min(os.cpu_count() or 1, len(todo)) if jobs is None else jobs
    if jobs < 1:
        raise BookError(f"--jobs must be >= 1, got {jobs}")
    run = BookRun(profile=profile)
    stage = out / "executed"
    moved = _suite_override(suite, models, steps, suite_options)
    common = on_suite(profiles[profile]["common"], moved)
    # Training is done here, at the boundary: a study reading a missing lhp suite refuses instead.
    _ensure_suites(suites_needed(profile, todo, profiles, moved), str(common["device"]), progress)
    # Side by side, the longest chapters should start first; a profile may say which they are. Chapters
    # that read every other chapter's cached results (the Timeline) run after them.
    first = list(profiles[profile].get("start_first") or [])
    last = [c for c in (profiles[profile].get("run_last") or []) if c in todo]
    start_order = sorted([c for c in todo if c not in last], key=lambda c: first.index(c) if c in first else len(first))
    _execute_all([start_order, last], profile, stage, root, jobs, run, progress, moved)
    run.executed = {c: run.executed[c] for c in todo}  # toc order, whatever order they ran in
    if build:
        executed = {c for c in chapters(root) if (stage / f"{c}.ipynb").is_file()}
        missing = [c for c in chapters(root) if c not in executed]
        if progress:
            print("[lhp book] building the HTML" + (f" without the chapters not executed yet: {', '.join(missing)}"
                                                     if missing else ""), flush=True)
        _stage_sources(root, stage, executed, built_on(profile, common, profiles[profile].get("dtype"),
                                                       (moved or {}).get("options")))
        built = build_html(stage, out)
        # jupyter-book writes to <out>/_build/html; give it the stable, documented name.
        final = out / "html"
        if final.exists():
            shutil.rmtree(final)
        shutil.move(str(built), str(final))
        shutil.rmtree(out / "_build", ignore_errors=True)
        run.html = final
        if progress:
            print(f"[lhp book] HTML: {final / 'index.html'}", flush=True)
    run.total_seconds = time.perf_counter() - started
    return run


def _suite_override(suite: str | None, models: list[str] | None, steps: list[int] | None,
                    options: Mapping[str, Any] | None = None) -> dict | None:
    """``lhp book --suite/--models/--steps`` (and the suite options) as :func:`on_suite` takes them.

    Models are resolved by the suite; a folder becomes its absolute path (the chapters' kernels run in
    ``book/``); the tokens each chosen model has seen must be known here, so that a suite that needs
    ``--seq-len`` or ``--tokens-per-step`` is refused before the first chapter, not in it.
    """
    options = {k: v for k, v in (options or {}).items() if v is not None}
    if suite is None:
        if models or steps or options:
            given = ["--models"] * bool(models) + ["--steps"] * bool(steps) + [OPTION_FLAGS[k] for k in options]
            raise BookError(f"{', '.join(given)} only appl{'ies' if len(given) == 1 else 'y'} with --suite; pass "
                            "--suite ID_OR_PATH too (or set the suite in book/profiles.yml)")
        return None
    try:
        s = get_suite(suite, **options)
        models = [s.resolve_model(m) for m in models] if models else None
        for m in models or s.models:
            for step in steps or ():
                s.check_step(m, step)
            if not getattr(s, "preset", None):  # lhp's own suites know their tokens, trained or not yet
                s.tokens_seen(m, (steps or s.steps(m))[-1])
    except (SuiteError, FileNotFoundError, ValueError) as err:
        raise BookError(f"--suite {suite}: {err}") from None
    if s.kind == "hub" and os.environ.get("HF_HUB_OFFLINE") == "1" and not (models and steps):
        models, steps = _cached(s, models, steps)
    folder = suite not in SUITES and Path(suite).expanduser().is_dir()
    name = str(Path(suite).expanduser().absolute()) if folder else suite
    return {"suite": name, "models": models, "steps": [int(x) for x in steps] if steps else None,
            "options": options}


def _cached(suite: Any, models: list[str] | None, steps: list[int] | None) -> tuple[list[str], list[int]]:
    """Offline, a hub suite's models and steps not chosen are those in the Hugging Face cache
    (models with a cached checkpoint; the steps every one of them has cached)."""
    def cached(m: str, step: int) -> bool:
        repo, rev = suite.hub_ref(m, step)
        return isinstance(try_to_load_from_cache(repo, "config.json", revision=rev), str)

    have = {m: [st for st in (steps or suite.steps(m)) if cached(m, st)] for m in (models or suite.models)}
    have = {m: st for m, st in have.items() if st}
    shared = sorted(set.intersection(*(set(v) for v in have.values()))) if have else []
    if not shared:
        raise BookError(f"--suite {suite.id}: HF_HUB_OFFLINE=1 and the Hugging Face cache holds no checkpoint that "
                        "every chosen model has; download them first (unset HF_HUB_OFFLINE) or pass --models/--steps")
    print(f"[lhp book] offline: {suite.id} at the checkpoints in the Hugging Face cache: {', '.join(have)}; "
          f"steps {', '.join(map(str, shared))}", flush=True)
    return list(have), shared


# --------------------------------------------------------------------------- CLI


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="default", choices=PROFILES, help="run size (book/profiles.yml)")
    parser.add_argument("--only", metavar="CHAPTER", help="execute only this chapter, e.g. suite")
    parser.add_argument("--no-build", action="store_true", help="execute the notebooks but do not build the HTML")
    parser.add_argument("--out", type=Path, help="build folder (default <repo>/_build)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="chapters executed side by side (default: one per CPU core)")
    parser.add_argument("--suite", metavar="ID_OR_PATH",
                        help="run every chapter on this suite instead of the profile's: a suite id (pythia, olmo, "
                             "lhp-mini), a folder of step<N>/ or checkpoint-<N>/ checkpoints")
    parser.add_argument("--models", nargs="+", metavar="MODEL", help="models of --suite (default: all)")
    parser.add_argument("--steps", nargs="+", type=int, metavar="STEP",
                        help="checkpoint steps of --suite (default: all it has)")
    add_suite_options(parser)


def run(args: argparse.Namespace) -> int:
    try:
        result = build_book(args.profile, only=args.only, build=not args.no_build, out=args.out, jobs=args.jobs,
                            suite=args.suite, models=args.models, steps=args.steps,
                            suite_options={k: getattr(args, k) for k in OPTION_FLAGS})
    except ProfileError as err:
        print(f"lhp book: {err}", file=sys.stderr)
        return 1
    print(f"[lhp book] {summary(result)}", flush=True)
    return 0
