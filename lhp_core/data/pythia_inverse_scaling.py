"""Inverse Scaling Prize tasks and TruthfulQA over Pythia's pre-training (Michaelov & Bergen, 2023).

``results/all_results.tsv``: zero-shot multiple-choice accuracy (LM Evaluation Harness v0.3.0)
of the standard Pythia models ``EleutherAI/pythia-{70m ... 12b}`` at steps 2,000-143,000 on the
ten multiple-choice Inverse Scaling Prize tasks (``isp_*``) and TruthfulQA (``truthfulqa_mc1``,
``truthfulqa_mc2``). ``statistical_analysis/statistical_tests.tsv``: the paper's per-task
t tests of the effects of parameters, tokens and their interaction.

The models are the standard runs; ``seed`` is 1234 in every row, the label the standard runs
have in :mod:`lhp_core.data.pythia_behavioral_phases` (:data:`~lhp_core.data.pythia_evals.STANDARD_SEED`), so
tables of both studies join.
"""
from __future__ import annotations

import re
from functools import lru_cache

import pandas as pd

from lhp_core.data.fetch import fetch
from lhp_core.data.pythia_evals import STANDARD_SEED, TOKENS_PER_STEP, nominal_params
from lhp_core.data.tables import read_csv

DATASET_ID = "pythia_inverse_scaling"
TASK_NAMES: dict[str, str] = {
    "isp_hindsight_neglect": "Hindsight Neglect",
    "isp_into_the_unknown": "Into the Unknown",
    "isp_memo_trap": "Memo Trap",
    "isp_modus_tollens": "Modus Tollens",
    "isp_neqa": "NeQA",
    "isp_pattern_matching_suppression": "Pattern Match Suppression",
    "isp_redefine": "Redefine",
    "isp_repetitive_algebra": "Repetitive Algebra",
    "isp_resisting_correction": "Resisting Correction",
    "isp_sig_figs": "Sig Figs",
    "truthfulqa_mc1": "TruthfulQA-MC1",
    "truthfulqa_mc2": "TruthfulQA-MC2",
}
"""Task ids of ``all_results.tsv`` -> the names the paper (and ``statistical_tests.tsv``) uses."""
COLUMNS = ["model", "seed", "step", "tokens_seen", "task", "accuracy", "accuracy_se"]
TEST_COLUMNS = ["task", "task_name", "term", "df", "t", "p", "p_relation"]
_MODEL = re.compile(r"^EleutherAI/(?P<model>pythia-\d+(?:\.\d+)?[mb])$")
_REVISION = re.compile(r"^step(?P<step>\d+)$")
_TEST = re.compile(r"^t\((?P<df>\d+)\)=(?P<t>-?[\d.]+), p(?P<rel>[<=])(?P<p>[\d.]+)$")


@lru_cache(maxsize=1)
def _load() -> pd.DataFrame:
    raw = read_csv(fetch(DATASET_ID, "results/all_results.tsv"), sep="\t", keep_default_na=False)
    model = raw["ModelName"].str.extract(_MODEL)["model"]
    step = raw["ModelRevision"].str.extract(_REVISION)["step"]
    if model.isna().any() or step.isna().any():
        bad = raw.loc[model.isna() | step.isna(), ["ModelName", "ModelRevision"]].drop_duplicates().head(3)
        raise ValueError(f"all_results.tsv: unreadable model or revision {bad.values.tolist()}")
    unknown = sorted(set(raw["Task"]) - set(TASK_NAMES))
    if unknown:
        raise ValueError(f"all_results.tsv: tasks without a name in TASK_NAMES: {unknown}")
    step = step.astype("int64")
    df = pd.DataFrame(
        {
            "model": model,
            "seed": STANDARD_SEED,
            "step": step,
            "tokens_seen": step * TOKENS_PER_STEP,
            "task": raw["Task"],
            "accuracy": raw["Accuracy"].astype(float),
            "accuracy_se": raw["Accuracy_SE"].astype(float),
        }
    )
    order = df["model"].map(nominal_params)
    ordered = df.assign(_n=order).sort_values(["_n", "task", "step"], kind="stable")
    return ordered.drop(columns="_n").reset_index(drop=True)


def load(task: str | None = None) -> pd.DataFrame:
    """Accuracy of every (model, checkpoint, task), models by size.

    Parameters
    ----------
    task
        Keep one task id (a key of :data:`TASK_NAMES`); None keeps all 768 rows.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`: ``model`` (``"pythia-1.4b"``), ``seed`` (1234, the standard
        run), ``step`` (2000, 4000, ..., 128000, 143000), ``tokens_seen`` (step x 2,097,152),
        ``task`` (upstream id, e.g. ``isp_memo_trap``), ``accuracy`` (0-1) and ``accuracy_se``
        (its standard error as the harness reports it).
    """
    df = _load()
    if task is not None:
        if task not in TASK_NAMES:
            raise KeyError(f"unknown task {task!r}; valid tasks: {', '.join(TASK_NAMES)}")
        df = df[df["task"] == task]
    return df.reset_index(drop=True)


def statistical_tests() -> pd.DataFrame:
    """The paper's per-task tests, one row per (task, term).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TEST_COLUMNS`: ``task`` (id as in :func:`load`), ``task_name``
        (the paper's name), ``term`` (``"parameters"``, ``"tokens"``, ``"interaction"``),
        ``df`` (degrees of freedom), ``t``, ``p`` and ``p_relation`` (``"="``, or ``"<"``
        where upstream reports only a bound, e.g. ``p<0.001``).
    """
    raw = read_csv(fetch(DATASET_ID, "statistical_analysis/statistical_tests.tsv"), sep="\t", keep_default_na=False)
    ids = {name: task for task, name in TASK_NAMES.items()}
    unknown = sorted(set(raw["task_name"]) - set(ids))
    if unknown:
        raise ValueError(f"statistical_tests.tsv: task names not in TASK_NAMES: {unknown}")
    rows = []
    for _, r in raw.iterrows():
        for column in ("Parameters", "Tokens", "Interaction"):
            m = _TEST.match(r[column].strip())
            if m is None:
                raise ValueError(f"statistical_tests.tsv: cannot read {r[column]!r} ({r['task_name']}, {column})")
            rows.append(
                (ids[r["task_name"]], r["task_name"], column.lower(), int(m["df"]), float(m["t"]), float(m["p"]),
                 m["rel"])
            )
    return pd.DataFrame(rows, columns=TEST_COLUMNS)
