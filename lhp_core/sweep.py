"""``lhp sweep``: extract reduced internals of every checkpoint of a suite into one store.

For each model of the suite and each requested step, the checkpoint is loaded, the stimuli
are run through it (:func:`lhp_core.extract.extract`), pooled on the device and written as one
region of a zarr store (:mod:`lhp_core.store`), which is then marked complete. So:

* **resume**: a killed sweep re-run with the same arguments skips completed (model, step)
  regions and overwrites partial ones; the result is identical to an uninterrupted run. Before
  it resumes, the weights hash recorded with each completed region of a suite on disk is
  compared with the checkpoint files now there: a changed checkpoint's region is recomputed
  (with a warning). A checkpoint whose files differ from the suite's training record is refused;
* **one writer**: a sweep holds the store's lock (:func:`lhp_core.store.lock`) from creation to
  the final metadata consolidation; a second sweep on the same store stops with an error naming
  the holder, or with ``wait=True`` (``--wait``) starts when the first ends;
* **windows**: ``max_length`` longer than the context the model was trained with is an error
  unless ``allow_beyond_context=True`` (``--allow-beyond-context``): positions past it were never
  trained, and rotary models run there without complaint;
* **overlap**: serially, the next checkpoint loads (and its weights are hashed) on a
  background thread while the current one computes;
* **more than one machine**: ``workers=N`` starts a local ``dask.distributed`` cluster and
  ``scheduler="tcp://host:8786"`` uses a running one; each (model, step) is one task that
  writes its own region, so results equal the serial run. On SLURM, start the workers with
  ``dask-jobqueue`` (``pip install lhp[slurm]``)::

      from dask_jobqueue import SLURMCluster
      cluster = SLURMCluster(cores=8, memory="64GB", processes=1, job_extra_directives=["--gres=gpu:1"])
      cluster.scale(jobs=4)
      sweep(..., scheduler=cluster.scheduler_address, device="cuda")

  The store path must be on a file system every worker can write.

Example::

    lhp sweep lhp-mini --stimuli sentences.txt --sites resid mlp logprobs \\
        --reducers stimulus_mean word_sum --steps log --out results/mini.zarr
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import lhp_core
from lhp_core import checkpoints
from lhp_core import store as St
from lhp_core.checkpoints import DTYPES, check_device, checkpoint_sha256, verified_sha256
from lhp_core.cli import at_least, device_name, positive_int
from lhp_core.extract import extract
from lhp_core.progress import bar
from lhp_core.provenance import config_sha256, git_commit
from lhp_core.reducers import HEAD_SCORES, get_reducer
from lhp_core.sites import check_sites, feature_sizes, linear_layout
from lhp_core.stimuli import Stimuli, encode, read_stimuli
from lhp_core.suites import SUITES, HubSuite, LocalSuite, add_suite_options, context_length, get_suite, suite_from_args
from lhp_core.weights import CorruptCheckpoint, loaded_weights_sha256

STEP_SPECS = "all, log, log:N (N >= 1 log-spaced steps) or a comma list of steps such as 0,512,1000"


def parse_steps(spec: str) -> str | list[int]:
    """Check a step spec's syntax: ``"all"``, ``"log"`` / ``"log:N"``, or ``"0,512,1000"`` (a sorted list).

    Raises ``ValueError`` naming the valid forms; the command line calls it while parsing.
    """
    text = spec.strip()
    if text == "all" or text == "log":
        return text
    try:
        if text.startswith("log:"):
            if int(text[4:]) < 1:
                raise ValueError
            return text
        steps = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise ValueError(f"invalid step spec {spec!r}; use {STEP_SPECS}") from None
    if not steps or steps[0] < 0:
        raise ValueError(f"invalid step spec {spec!r}; use {STEP_SPECS}")
    return steps


def select_steps(available: Sequence[int], spec: str | Sequence[int] = "all") -> list[int]:
    """Steps to sweep: ``"all"``, ``"log"`` / ``"log:N"`` (N log-spaced steps, default 12, plus
    step 0 if present), ``"0,512,1000"`` or a list of ints (each must be available)."""
    available = sorted(int(s) for s in available)
    if isinstance(spec, str):
        spec = parse_steps(spec)
    if spec == "all":
        return available
    if isinstance(spec, str):  # log, log:N
        n = int(spec.split(":", 1)[1]) if ":" in spec else 12
        positive = np.array([s for s in available if s > 0])
        if not len(positive):
            return available
        targets = np.geomspace(positive.min(), positive.max(), n)
        picked = {int(positive[np.argmin(np.abs(np.log(positive) - np.log(t)))]) for t in targets}
        return sorted(picked | ({0} if 0 in available else set()))
    wanted = sorted({int(s) for s in spec})
    missing = [s for s in wanted if s not in set(available)]
    if missing:
        raise ValueError(f"steps {missing} are not checkpoints of this model; available: {available}")
    return wanted


def _default_loader(suite, model: str, step: int, device: str, dtype: torch.dtype):
    return checkpoints.load(suite, model, step, device=device, dtype=dtype)


@dataclass
class Job:
    """Everything one (model, step) task needs; picklable so dask can ship it to workers."""

    suite: Any
    stimuli: Stimuli
    out: str
    sites: list[str]
    reducers: list[str]
    head_scores: list[str]
    device: str
    dtype: str
    batch_size: int
    max_length: int | None
    steps: dict[str, list[int]]
    loader: Callable | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    allow_beyond_context: bool = False

    def load(self, model: str, step: int):
        """``(model, tokenizer, weights sha256)`` of one checkpoint on the job's device."""
        loader = self.loader or _default_loader
        m, tok = loader(self.suite, model, step, device=self.device, dtype=DTYPES[self.dtype])
        if not self.allow_beyond_context:
            check_window(self.max_length, _trained_context(self.suite, m), f"model {model!r}")
        return m, tok, self.checkpoint_sha256(model, step, m)

    def checkpoint_sha256(self, model: str, step: int, loaded: torch.nn.Module) -> str:
        """The checkpoint files' hash (as in ``training_record.nc``; for hub suites the cached
        snapshot's files), else the hash of the loaded tensors (:func:`lhp_core.weights.loaded_weights_sha256`).

        Raises :class:`~lhp_core.weights.CorruptCheckpoint` where the files differ from the suite's
        training record."""
        try:
            on_disk = verified_sha256(self.suite, model, step)
        except CorruptCheckpoint:
            raise
        except (KeyError, OSError, ValueError):  # KeyError includes SuiteError
            on_disk = None  # a suite object lhp does not know (a test double, a user's class)
        return on_disk or loaded_weights_sha256(loaded)


def _trained_context(suite: Any, model: torch.nn.Module | None = None) -> int | None:
    """The longest window a model was trained on: the suite's recorded context (lhp suites), else
    the config's position count (not capped, unlike :func:`lhp_core.suites.context_length`)."""
    recorded = context_length(suite) if isinstance(suite, (str, Path, LocalSuite)) else None
    if recorded or model is None:
        return recorded
    cfg = model.config
    n = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    return int(n) if n else None


def check_window(max_length: int | None, context: int | None, where: str) -> None:
    """Refuse windows longer than the model's trained context (``allow_beyond_context`` skips this)."""
    if max_length is not None and context is not None and max_length > context:
        raise ValueError(
            f"a window of {max_length} tokens (--max-length) is longer than the {context}-token context {where} "
            f"was trained on: positions past {context} were never trained, so their numbers are not the model's "
            f"behaviour; use --max-length {context} or less, or pass --allow-beyond-context "
            "(allow_beyond_context=True) to measure beyond it on purpose"
        )


def _variables(job: Job) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for site in job.sites:
        if site == "heads":
            out[site] = {name: "stimulus" for name in job.head_scores}
        else:
            out[site] = {r: get_reducer(r).group for r in job.reducers}
    return out


def _allocate(job: Job, model_id: str, tokens_seen: list[int], model, tok) -> None:
    St.allocate(job.out, model_id, *_layout(job, model_id, tokens_seen, model, tok))


def _layout(job: Job, model_id: str, tokens_seen: list[int], model, tok) -> tuple[dict, dict]:
    """The store groups and attrs of one model (:func:`lhp_core.store.template`); checks its sites first."""
    check_sites(job.sites, model)
    enc = encode(job.stimuli, tok, job.max_length or context_length(job.suite, model))
    word_stim, word_text = job.stimuli.word_table()
    ids = np.asarray(job.stimuli.ids, dtype=str)
    axes = {
        "stimulus": {"stimulus": ids},
        "word": {"word": np.arange(enc.n_words), "word_stimulus": word_stim, "word_text": word_text},
        "token": {"token": np.arange(enc.n_tokens), "token_stimulus": ids[enc.token_stimulus],
                  "token_id": enc.token_id, "token_word": enc.token_word},
    }
    feats = feature_sizes(model)
    n_layers = model.config.num_hidden_layers
    source, where = _provenance(job.suite, model_id, job.steps[model_id])
    groups = St.template(job.steps[model_id], tokens_seen, n_layers, feats, axes, _variables(job),
                         linear_layout(model)[0] if "linear" in job.sites else None, tokens_source=source)
    attrs = {"model": model_id, "architecture": str(model.config.model_type), "n_layers": int(n_layers),
             "d_model": int(feats["resid"][0]), "source": str(getattr(model.config, "_name_or_path", "") or ""),
             "revision": str(getattr(job.suite, "revision", "") or ""), "tokens_seen_source": source,
             "checkpoints": json.dumps(where)}
    return groups, attrs


def _provenance(suite: Any, model: str, steps: Sequence[int]) -> tuple[str, dict[str, str]]:
    """Where a model's ``tokens_seen`` comes from, and where each step's checkpoint is
    (``repo@revision`` or a folder); empty for suite objects that do not say."""
    try:
        s = get_suite(suite)
    except (KeyError, TypeError):
        return str(getattr(suite, "tokens_source", lambda m: "")(model) or "the suite object's tokens_seen"), {}
    if isinstance(s, HubSuite):
        return s.tokens_source(model), {str(st): "@".join(s.hub_ref(model, st)) for st in steps}
    if isinstance(s, LocalSuite):
        return s.tokens_source(model), {str(st): str(s.checkpoint_path(model, st).resolve()) for st in steps}
    return s.tokens_source(model), {}


def compute_task(job: Job, model_id: str, step: int, loaded=None):
    """Extract one checkpoint (loading it unless ``loaded`` is given); nothing is written."""
    model, tok, sha = loaded if loaded is not None else job.load(model_id, step)
    res = extract(model, tok, job.stimuli, job.sites, job.reducers, job.head_scores, job.batch_size,
                  job.max_length, where=f"model {model_id!r} step {step}")
    return res, sha


def write_task(job: Job, model_id: str, step: int, res, sha: str) -> int:
    """Write one checkpoint's region, then mark it complete. Returns tokens run."""
    index = job.steps[model_id].index(step)
    St.write_region(job.out, model_id, index, step, res.values, job.sites)
    St.mark_complete(job.out, model_id, index, step, sha, res.n_tokens)
    return res.n_tokens


def run_task(job: Job, model_id: str, step: int) -> int:
    """Extract one checkpoint and write its region (a dask task). Returns tokens run."""
    return write_task(job, model_id, step, *compute_task(job, model_id, step))


def _release(device: str) -> None:
    gc.collect()
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()


def sweep(
    suite: Any,
    stimuli: Stimuli,
    out: str | Path,
    sites: Sequence[str] = ("resid",),
    reducers: Sequence[str] = ("word_mean",),
    head_scores: Sequence[str] = (),
    models: Sequence[str] | None = None,
    steps: str | Sequence[int] | Mapping[str, str | Sequence[int]] = "all",
    device: str = "cpu",
    dtype: str = "float32",
    batch_size: int = 8,
    max_length: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    processes: bool = True,
    loader: Callable | None = None,
    overwrite: bool = False,
    progress: bool = True,
    wait: bool = False,
    allow_beyond_context: bool = False,
) -> Path:
    """Run every (model, step) of ``suite`` over ``stimuli`` and store the pooled sites.

    Parameters
    ----------
    suite
        A suite id or folder (resolved with ``lhp_core.suites.get_suite``) or an object with
        ``.models``, ``.steps(model)`` and ``.tokens_seen(model, step)``.
    stimuli
        The stimulus table (:class:`lhp_core.stimuli.Stimuli`).
    out
        Path of the zarr store; re-running with the same arguments resumes it.
    sites, reducers, head_scores
        See :mod:`lhp_core.sites` and :mod:`lhp_core.reducers`.
    models
        Subset of ``suite.models`` (default: all).
    steps
        ``"all"``, ``"log"``, ``"log:N"`` or a list, for every model (see :func:`select_steps`);
        or a mapping ``model -> spec`` where models have different checkpoints.
    device, dtype
        Where and in which precision the models run (``"bfloat16"`` on GPUs); pooling is float32.
    max_length
        Tokens per window, BOS included; longer texts slide with 50 % overlap. Default: the
        context the suite was trained with where it records one (lhp suites), else each
        model's ``max_position_embeddings`` (at most 2048).
    workers, scheduler
        Run tasks on a local dask cluster of ``workers`` workers (``processes=False``: threads)
        or on the dask scheduler at ``scheduler``.
    loader
        ``loader(suite, model, step, device=, dtype=) -> (model, tokenizer)``; default
        ``lhp_core.checkpoints.load``.
    overwrite
        Replace the lhp store at ``out`` (only a provable store: :mod:`lhp_core.store`).
    wait
        When another sweep holds the store's lock: wait for it (True) or raise
        :class:`lhp_core.store.StoreLocked` naming it (False).
    allow_beyond_context
        Accept ``max_length`` longer than the context the model was trained on.

    Returns
    -------
    The store path; open it with :func:`lhp_core.open_results`.
    """
    check_sites(list(sites))
    for r in reducers:
        get_reducer(r)
    for h in head_scores:
        HEAD_SCORES.get(h)
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive number of windows, got {batch_size}")
    check_device(device)
    suite_obj = suite
    if isinstance(suite, (str, Path)):
        suite_obj = get_suite(str(suite))
    all_models = list(suite_obj.models)
    resolve = getattr(suite_obj, "resolve_model", None)
    if resolve is not None:  # bare sizes ("70m") name Pythia models, as in get_suite("pythia").resolve_model
        models = [resolve(m) for m in (models or all_models)]
        if isinstance(steps, Mapping):
            steps = {resolve(m): v for m, v in steps.items()}
    models = list(models or all_models)
    unknown = [m for m in models if m not in all_models]
    if unknown:
        raise KeyError(f"models {unknown} are not in the suite; its models: {', '.join(all_models)}")
    if max_length is None:
        # A suite trained on short windows (lhp-mini: 64 tokens) is swept in windows of that length;
        # otherwise each model's config decides (Pythia: 2048).
        max_length = context_length(suite_obj)
    elif not allow_beyond_context:  # checked again per model once loaded, where no record says it
        check_window(max_length, _trained_context(suite_obj), f"suite {suite_obj.id!r}")
    if isinstance(steps, Mapping):
        lacking = [m for m in models if m not in steps]
        if lacking:
            raise KeyError(f"steps has no entry for models {lacking}; give one per model or a single spec for all")
        step_map = {m: select_steps(suite_obj.steps(m), steps[m]) for m in models}
    else:
        step_map = {m: select_steps(suite_obj.steps(m), steps) for m in models}
    tokens_seen = {m: [int(suite_obj.tokens_seen(m, s)) for s in step_map[m]] for m in models}
    raw_id = str(suite) if isinstance(suite, (str, Path)) else str(getattr(suite, "id", type(suite).__name__))
    suite_id = suite_key(suite)
    config = {"suite": suite_id, "steps": step_map, "sites": list(sites), "reducers": list(reducers),
              "head_scores": list(head_scores), "stimuli": stimuli.fingerprint(), "dtype": dtype,
              "max_length": max_length or 0}
    attrs = {"suite": suite_id, "code_version": lhp_core.__version__, "git_commit": git_commit(),
             "device": device, "dtype": dtype, "sites": ",".join(sites), "reducers": ",".join(reducers),
             "head_scores": ",".join(head_scores), "stimuli_sha256": stimuli.fingerprint(),
             "stimuli_kind": stimuli.kind, "max_length": int(max_length or 0), "batch_size": int(batch_size),
             "store_version": St.STORE_VERSION, "config_sha256": config_sha256(config)}
    out = Path(out)
    job = Job(suite if isinstance(suite, (str, Path)) else suite_obj, stimuli, str(out), list(sites),
              list(reducers), list(head_scores), device, dtype, batch_size, max_length, step_map, loader, attrs,
              allow_beyond_context)
    if isinstance(job.suite, Path):
        job.suite = str(job.suite)
    with St.lock(out, wait=wait):
        # Stores written before paths were normalised hashed the suite as typed.
        St.initialise(out, attrs, config, overwrite=overwrite, also_accept=[config_sha256({**config, "suite": raw_id})])
        done = {m: (St.completed(out, m) if St.is_allocated(out, m) else {}) for m in models}
        for m in models:
            if done[m]:
                St.check_tokens_seen(out, m, tokens_seen[m])
        if isinstance(suite_obj, LocalSuite):
            _invalidate_changed(out, suite_obj, models, step_map, done)
        tasks = [(m, s) for m in models for s in step_map[m] if not done[m].get(s, False)]
        total = sum(len(v) for v in step_map.values())
        if tasks:
            St.unconsolidate(out)
        pbar = bar(total=total, initial=total - len(tasks), desc="sweep", unit="ckpt", disable=not progress)
        if workers or scheduler:
            _run_dask(job, tasks, tokens_seen, pbar, workers, scheduler, processes)
        else:
            _run_serial(job, tasks, tokens_seen, pbar)
        pbar.close()
        if not St.is_consolidated(out):
            St.consolidate(out)
    return out


def suite_key(suite: Any) -> str:
    """How a suite enters a store's configuration: a registered id as it is, a folder (given by path
    or as a suite object named by its path) as its absolute path, so ``runs/suite``, ``runs/suite/``
    and ``./runs/suite`` are one suite; any other suite object by its ``id``."""
    if isinstance(suite, LocalSuite) and suite.id == str(suite.root):
        return str(suite.root.resolve())
    if not isinstance(suite, (str, Path)):
        return str(getattr(suite, "id", type(suite).__name__))
    text = str(suite)
    if text in SUITES:
        return text
    return str(Path(text).expanduser().resolve())


def _invalidate_changed(out: Path, suite: LocalSuite, models: Sequence[str], step_map: Mapping[str, list[int]],
                        done: dict[str, dict[int, bool]]) -> None:
    """Recompute completed regions whose checkpoint files changed since they were written.

    Only suites on disk are re-hashed (a hub checkpoint's cache is content-addressed by the hub
    client, and hashing every cached revision of a 12B model on each resume would dwarf the sweep).
    """
    for m in models:
        if not done[m]:
            continue
        for step, stored in St.recorded_hashes(out, m).items():
            if step not in step_map[m]:
                continue
            now = checkpoint_sha256(suite, m, step)
            if now is not None and now != stored:
                warnings.warn(
                    f"{out}: checkpoint {m!r} step {step} changed since its region was written (weights sha256 "
                    f"{stored[:12]}... then, {now[:12]}... now); recomputing that region", stacklevel=3)
                St.mark_incomplete(out, m, step_map[m].index(step), step)
                done[m][step] = False


class _Inline(Executor):
    """An executor that runs each task at once in the caller's thread (a finished future back)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001  (handed to whoever asks the future, as a thread would)
            fut.set_exception(exc)
        return fut


def overlaps(device: torch.device | str) -> bool:
    """Whether loading and writing run beside the compute (threads) or between steps (inline).

    Beside a GPU they cost the compute nothing. On a CPU they need a core the model does not use:
    with torch's intra-op threads on every core, a prefetch or a write preempts one of them and
    every parallel op waits at its barrier for it: on 2 cores a 5-step per-word sweep took
    1.53-1.78 s with the threads and 1.42-1.49 s in turn (benchmarks/README.md).
    """
    if torch.device(device).type != "cpu":
        return True
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return torch.get_num_threads() < cores


def _background(name: str, device: torch.device | str) -> Executor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) if overlaps(device) else _Inline()


def _run_serial(job: Job, tasks: list[tuple[str, int]], tokens_seen, pbar) -> None:
    """One checkpoint computes while the next loads (prefetch thread) and the previous one is
    written (writer thread), where a core is free for them (:func:`overlaps`); otherwise in turn.
    At most one region waits to be written, so host memory holds two checkpoints' pooled results
    at most, however many steps there are."""
    if not tasks:
        return
    t0, n_tok = time.perf_counter(), 0
    with _background("lhp-prefetch", job.device) as loader, _background("lhp-writer", job.device) as writer:
        written, allocating, seen = None, None, set()

        def drain() -> None:
            nonlocal n_tok, written, allocating
            if allocating is not None:
                allocating.result()  # a failed allocation stops the sweep before any region is written
                allocating = None
            if written is not None:
                m_done, step_done, fut = written
                n_tok += fut.result()  # a failed write stops the sweep here; completed steps stay
                written = None
                pbar.set_postfix(model=m_done, step=step_done, tok_s=f"{n_tok / (time.perf_counter() - t0):.0f}",
                                 refresh=False)
                pbar.update(1)

        nxt = loader.submit(job.load, *tasks[0])
        for i, (m, step) in enumerate(tasks):
            loaded = nxt.result()
            nxt = loader.submit(job.load, *tasks[i + 1]) if i + 1 < len(tasks) else None
            if m not in seen:
                seen.add(m)
                if not St.is_allocated(job.out, m):
                    # The writer thread allocates while the first checkpoint computes (creating a store's
                    # arrays costs a small model's sweep a forward pass); it runs its tasks in order, so
                    # the allocation follows the last write of the previous model and precedes this one's.
                    layout = _layout(job, m, tokens_seen[m], loaded[0], loaded[1])
                    drain()
                    allocating = writer.submit(St.allocate, job.out, m, *layout)
            res, sha = compute_task(job, m, step, loaded)
            del loaded
            drain()
            written = (m, step, writer.submit(write_task, job, m, step, res, sha))
            del res
            if nxt is not None and tasks[i + 1][0] != m:
                _release(job.device)  # before the next model's weights join the prefetched ones
        drain()


def _run_dask(job: Job, tasks, tokens_seen, pbar, workers, scheduler, processes) -> None:
    from distributed import Client, LocalCluster, as_completed

    # Allocation happens here, once per model, so workers only ever write regions.
    for m in dict.fromkeys(m for m, _ in tasks):
        if not St.is_allocated(job.out, m):
            model, tok = (job.loader or _default_loader)(job.suite, m, job.steps[m][0], device="cpu",
                                                         dtype=torch.float32)
            _allocate(job, m, tokens_seen[m], model, tok)
            del model
    if scheduler:
        client, cluster = Client(scheduler), None
    else:
        # tcp on loopback, threads included: a local cluster needs no outside interface (the default
        # in-process transport probes one with a UDP connect to a public address)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                               dashboard_address=None, host="127.0.0.1", protocol="tcp://")
        client = Client(cluster)
    try:
        t0, n_tok = time.perf_counter(), 0
        futures = [client.submit(run_task, job, m, s, pure=False, key=f"lhp-{m}-{s}-{time.time_ns()}")
                   for m, s in tasks]
        for fut in as_completed(futures):
            n_tok += fut.result()
            pbar.set_postfix(tok_s=f"{n_tok / (time.perf_counter() - t0):.0f}", refresh=False)
            pbar.update(1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ---- command line -----------------------------------------------------------------------
def _step_spec(text: str) -> str:
    try:
        parse_steps(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", help="suite id (e.g. lhp-mini, pythia), a folder (Trainer output with "
                                      "checkpoint-<N>/, step<N>/ folders, or one model) or a hub repo id "
                                      "with --revisions")
    parser.add_argument("--stimuli", required=True,
                        help="a .txt file (one stimulus per line, id = line number; blank lines skipped) or a "
                             ".csv/.tsv table (see --text-column/--word-column); empty cells are errors")
    parser.add_argument("--encoding", default="utf-8", help="text encoding of the stimulus file (default utf-8)")
    parser.add_argument("--text-column", help="table column holding one text per row")
    parser.add_argument("--word-column", help="table column holding one word per row (pre-segmented texts)")
    parser.add_argument("--id-column", default="stimulus", help="table column with the stimulus id")
    parser.add_argument("--out", required=True, help="output zarr store (re-run to resume)")
    parser.add_argument("--models", nargs="+", help="models of the suite (default: all; Pythia also takes sizes: 70m)")
    parser.add_argument("--steps", default="all", type=_step_spec, help=STEP_SPECS)
    parser.add_argument("--sites", nargs="+", default=["resid"],
                        help="resid mlp attn_out linear logprobs logprobs_bow heads")
    parser.add_argument("--reducers", nargs="+", default=["word_mean"],
                        help="word_mean word_last word_sum stimulus_mean stimulus_last stimulus_max per_token")
    parser.add_argument("--head-scores", nargs="+", default=[], help="head scores for the heads site")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", type=device_name,
                        help="cpu, cuda, cuda:N or mps (checked before anything is written)")
    parser.add_argument("--dtype", default=None, choices=list(DTYPES),
                        help="float32 (CPU default) or bfloat16 (GPU default)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="windows per forward pass")
    parser.add_argument("--max-length", type=at_least(3), default=None,
                        help="window length incl. BOS (default: the suite's training context, else the model's); "
                             "longer than the trained context needs --allow-beyond-context")
    parser.add_argument("--allow-beyond-context", action="store_true",
                        help="accept --max-length beyond the context the model was trained on (untrained positions)")
    parser.add_argument("--workers", type=positive_int, help="run on a local dask cluster with N workers")
    parser.add_argument("--scheduler", help="address of a running dask scheduler (e.g. from dask-jobqueue)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing lhp store at --out (refused for any other folder)")
    parser.add_argument("--wait", action="store_true",
                        help="if another sweep is writing --out, wait for it instead of stopping")
    add_suite_options(parser)


def run(args: argparse.Namespace) -> int:
    stimuli = read_stimuli(args.stimuli, text_column=args.text_column, word_column=args.word_column,
                           id_column=args.id_column, encoding=args.encoding)
    dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    suite = suite_from_args(args)
    for line in get_suite(suite).describe():  # what was recognised, before any checkpoint loads
        print(line, flush=True)
    out = sweep(suite, stimuli, args.out, sites=args.sites, reducers=args.reducers,
                head_scores=args.head_scores, models=args.models, steps=args.steps, device=args.device,
                dtype=dtype, batch_size=args.batch_size, max_length=args.max_length, workers=args.workers,
                scheduler=args.scheduler, overwrite=args.overwrite, wait=args.wait,
                allow_beyond_context=args.allow_beyond_context)
    print(f"wrote {out}")
    return 0
