"""``lhp book --profile ci --suite ...`` on suites lhp did not write: Pythia from the hub, a Trainer run.

Rehearsed offline: two models of a suite trained with ``lhp train --preset micro`` (real structure,
the ci book's sizes) are served from a local Hugging Face cache as ``EleutherAI/pythia-70m`` and
``EleutherAI/pythia-160m`` at Pythia's revision names (``step0`` ... ``step143000``), so ``pythia``
resolves to them with Pythia's 2,097,152 tokens per step; the larger one is also written as a
Hugging Face Trainer output folder (``checkpoint-<N>/``) that, like a Trainer run at its defaults, logged no
token counts, so the book is told the sequence length (``--seq-len``). Every chapter must execute and record its
numbers on each, name the suite it ran on, and the Timeline's axis must be the suite's tokens.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lhp_core import book, findings
from tests.checkpoint_folders import trainer_folder
from tests.hub_cache import PYTHIA_TOKENS_PER_STEP, fake_pythia

ROOT = Path(__file__).resolve().parents[2]
MICRO_TOKENS_PER_STEP = 8 * 128  # the micro preset's batch x context
MICRO_CONTEXT = 128


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The trained suite, the fake hub cache and the Trainer folder, with the environment that reads them."""
    from lhp_core.train import train

    base = tmp_path_factory.mktemp("any-suite")
    suite = train("micro", base / "micro", sizes=["s", "m"], threads=1, progress=False)
    named = fake_pythia(base / "hub", suite, {"70m": "s", "160m": "m"})
    # Batch 4 x gradient accumulation 2 x --seq-len 128: the micro preset's tokens per step, from the run's files.
    trainer = trainer_folder(base / "run", {st: suite / "m" / f"step{st}" for st in named if st > 0},
                             train_batch_size=4, gradient_accumulation_steps=2)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "HF_HUB_CACHE": str(base / "hub"), "HF_HUB_OFFLINE": "1", "LHP_CACHE": str(base / "cache"),
           "LHP_SUITES": str(base / "suites")}
    return {"base": base, "named": named, "trainer": trainer, "env": env}


def _book(served: dict, suite: str, out: Path, build: bool, options: tuple[str, ...] = ()) -> dict[str, Path]:
    log = out / "lhp-book.log"
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "lhp_core.cli", "book", "--profile", "ci", "--suite", suite, *options, "--out",
           str(out)]
    with log.open("w") as f:
        proc = subprocess.run(cmd + ([] if build else ["--no-build"]), cwd=ROOT, env=served["env"], stdout=f,
                              stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        pytest.fail(f"lhp book --profile ci --suite {suite} failed (exit {proc.returncode}); the end of {log}:\n{tail}")
    return {c: out / "executed" / f"{c}.ipynb" for c in book.chapters(ROOT)}


def _timeline_axis(served: dict, suite: str, models: list[str] | None, steps: list[int] | None,
                   suite_options: dict | None = None) -> list[dict]:
    """The found events of the Timeline the chapter drew (same caches), as (model, step, tokens_seen) rows."""
    code = ("import json, sys; from lhp_core.studies import timeline; "
            "a = json.loads(sys.argv[1]); ev = timeline.run('ci', suite=a['suite'], models=a['models'], "
            "steps=a['steps'], with_published=False).events(); ev = ev[ev.found]; "
            "print(json.dumps(ev[['model', 'step', 'tokens_seen']].to_dict('records')))")
    args = json.dumps({"suite": suite, "models": models, "steps": steps})
    env = {**served["env"], **({"LHP_SUITE_OPTIONS": json.dumps({suite: suite_options})} if suite_options else {})}
    out = subprocess.run([sys.executable, "-c", code, args], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _check_chapters(executed: dict[str, Path], suite: str) -> dict[str, dict]:
    records = {c: book.read_record(p) for c, p in executed.items()}
    for chapter, numbers in records.items():
        assert numbers, f"{chapter} recorded nothing on {suite}"
        if chapter != "skills":  # the skill-graph simulator reads no suite
            got = findings.from_record(numbers)
            assert got, f"{chapter} recorded no findings on {suite}"
    assert records["suite"]["suite"] == suite and records["timeline"]["suite"] == suite
    for chapter in ("suite", "brain", "emergence", "experts", "reading"):
        suites = {f.suite for f in findings.from_record(records[chapter])}
        assert suite in suites, f"{chapter}'s findings do not name {suite}: {suites}"
    return records


def test_book_on_pythia_from_the_hub_cache(served: dict) -> None:
    out = served["base"] / "book-pythia"
    records = _check_chapters(_book(served, "pythia", out, build=True), "pythia")
    pythia_steps = sorted(served["named"].values())
    assert records["suite"]["last_step"] == pythia_steps[-1] == 143000
    assert records["suite"]["n_checkpoints"] == len(pythia_steps)
    # No -copyreg twin: the reading chapter says so instead of failing.
    copyreg = {f.id: f for f in findings.from_record(records["reading"])}["copyreg_keeps_ppp"]
    assert copyreg.verdict == "not measurable here" and "no copy-regularised twin" in copyreg.measured
    intro = (out / "executed" / "intro.md").read_text()
    assert "on the suite **pythia**" in intro and "| pythia |" in intro
    events = _timeline_axis(served, "pythia", ["pythia-70m", "pythia-160m"], pythia_steps)
    assert events, "the Timeline found no event on the served Pythia"
    for e in events:  # the axis is Pythia's tokens: step x 2,097,152
        assert e["tokens_seen"] == pytest.approx(e["step"] * PYTHIA_TOKENS_PER_STEP, rel=1e-12)


def test_book_on_a_trainer_output_folder(served: dict) -> None:
    run = str(served["trainer"])
    out = served["base"] / "book-trainer"
    records = _check_chapters(_book(served, run, out, build=False, options=("--seq-len", str(MICRO_CONTEXT))), run)
    steps = sorted(st for st in served["named"] if st > 0)
    assert records["suite"]["last_step"] == steps[-1] and records["suite"]["n_checkpoints"] == len(steps)
    events = _timeline_axis(served, run, None, None, {"sequence_length": MICRO_CONTEXT})
    assert events, "the Timeline found no event on the Trainer run"
    for e in events:
        assert e["tokens_seen"] == pytest.approx(e["step"] * MICRO_TOKENS_PER_STEP, rel=1e-12)
