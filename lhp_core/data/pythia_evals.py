"""Pythia v1 benchmark results over training (EleutherAI LM Evaluation Harness JSON).

Upstream layout: ``evals/pythia-v1/<folder>/<setting>/<name>_step<N>.json`` with
``folder`` = ``pythia-<size>[-deduped][-bf16 | -<B>MtokBS]`` and ``setting`` =
``zero-shot`` / ``five-shot`` / ``baseline`` / ``intervention`` (some batch-size folders
have no setting level). The number of shots is read from each file's config. :func:`load` flattens
every file into one long table; LAMBADA perplexity is ``task == "lambada_openai"``,
``metric == "ppl"``.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache

import pandas as pd

from lhp_core import progress
from lhp_core.data.fetch import fetch
from lhp_core.data.manifests import get_manifest

DATASET_ID = "pythia_evals"
TOKENS_PER_STEP = 2_097_152
"""Tokens per optimiser step of the main suite (1,024 sequences x 2,048 tokens)."""
STANDARD_SEED = 1234
"""Seed of the standard Pythia runs (``EleutherAI/pythia-<size>``); PolyPythia re-runs are seeds 1-9."""
_FOLDER = re.compile(r"^pythia-(?P<size>\d+(?:\.\d+)?[mb])(?P<dedup>-deduped)?(?:-(?P<extra>bf16|[\d.]+MtokBS))?$")
# Some batch-size folders keep their JSON directly under the model folder (no setting).
_PATH = re.compile(r"^evals/pythia-v1/(?P<folder>[^/]+)/(?:(?P<setting>[^/]+)/)?[^/]*_step(?P<step>\d+)\.json$")
_NOMINAL = re.compile(r"(?P<n>\d+(?:\.\d+)?)(?P<unit>[mb])(?:-|$)")
COLUMNS = [
    "model", "size", "deduped", "variant", "shots", "step", "tokens_seen", "task", "metric", "value", "stderr", "path",
]


def nominal_params(model: str) -> float:
    """Parameter count a Pythia model's name states: ``"pythia-1.4b"`` -> 1.4e9 (for sorting by size)."""
    m = _NOMINAL.search(model)
    if m is None:
        raise ValueError(f"no size like 70m or 1.4b in the model name {model!r}")
    return float(m["n"]) * (1e6 if m["unit"] == "m" else 1e9)


def files() -> list[str]:
    """Relative paths (in the ``pythia_evals`` dataset) of every result JSON."""
    return [f.path for f in get_manifest(DATASET_ID).files if _PATH.match(f.path)]


def _describe(relpath: str) -> dict:
    m = _PATH.match(relpath)
    if m is None:
        raise ValueError(f"{relpath!r} is not an evals/pythia-v1/<model>/<setting>/..._step<N>.json path")
    f = _FOLDER.match(m["folder"])
    if f is None:
        raise ValueError(f"cannot parse the model folder {m['folder']!r} of {relpath!r}")
    extra = f["extra"]
    if m["setting"] in ("baseline", "intervention"):
        variant = f"gender-{m['setting']}"
    elif extra and extra.endswith("MtokBS"):
        variant = f"batch-{extra}"
    else:
        variant = "main"  # includes pythia-1b-bf16: the 1B model, evaluated in bf16
    if extra and extra.endswith("MtokBS"):
        tokens_per_step = round(float(extra[: -len("MtokBS")]) * TOKENS_PER_STEP / 2)
    else:
        tokens_per_step = TOKENS_PER_STEP
    step = int(m["step"])
    return {
        "model": f"pythia-{f['size']}{f['dedup'] or ''}",
        "size": f["size"],
        "deduped": bool(f["dedup"]),
        "variant": variant,
        "step": step,
        "tokens_seen": step * tokens_per_step,
        "path": relpath,
    }


@lru_cache(maxsize=1)
def _load() -> pd.DataFrame:
    rows: list[tuple] = []
    for relpath in progress.bar(files(), desc="Pythia eval JSON", unit="file", leave=False, disable=None):
        meta = _describe(relpath)
        doc = json.loads(fetch(DATASET_ID, relpath).read_text())
        shots = int(doc["config"]["num_fewshot"])
        for task, metrics in doc["results"].items():
            for metric, value in metrics.items():
                if metric.endswith("_stderr"):
                    continue
                stderr = metrics.get(f"{metric}_stderr", float("nan"))
                rows.append(
                    (
                        meta["model"], meta["size"], meta["deduped"], meta["variant"], shots, meta["step"],
                        meta["tokens_seen"], task, metric, float(value), float(stderr), relpath,
                    )
                )
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.sort_values(["variant", "model", "shots", "step", "task", "metric"], kind="stable").reset_index(drop=True)


def load(variant: str | None = None) -> pd.DataFrame:
    """Every metric of every result file as one tidy table.

    Parameters
    ----------
    variant
        Keep only one variant (``"main"``, ``"gender-baseline"``, ``"gender-intervention"``,
        ``"batch-0.25MtokBS"``, ``"batch-0.5MtokBS"``, ``"batch-1MtokBS"``); None keeps all.

    Returns
    -------
    pandas.DataFrame
        ``model`` (``"pythia-410m"``, ``"pythia-410m-deduped"``), ``size`` (``"410m"``),
        ``deduped`` (bool), ``variant``, ``shots`` (0 or 5, from the file's config),
        ``step``, ``tokens_seen`` (step x tokens per step: 2,097,152 for the main suite; the
        batch-size variants count steps in their own batches, assumed to be
        ``B / 2 x 2,097,152`` tokens for ``<B>MtokBS``), ``task`` (e.g. ``lambada_openai``,
        ``piqa``, ``hendrycksTest-anatomy``), ``metric`` (``acc``, ``acc_norm``, ``ppl``,
        ``likelihood_difference``, ``pct_stereotype``), ``value``, ``stderr`` (NaN if not
        reported), ``path`` (source file).
    """
    df = _load()
    if variant is not None:
        valid = sorted(df["variant"].unique())
        if variant not in valid:
            raise KeyError(f"unknown variant {variant!r}; valid variants: {', '.join(valid)}")
        df = df[df["variant"] == variant]
    return df.reset_index(drop=True)


def curve(task: str, metric: str, shots: int = 0, variant: str = "main") -> pd.DataFrame:
    """One benchmark metric over training: index ``step``, one column per model.

    Example: ``curve("lambada_openai", "ppl")`` gives LAMBADA perplexity of the 16 main
    models at their 0-shot checkpoints (NaN where a model was not evaluated at a step).
    """
    df = load(variant)
    sel = df[(df["task"] == task) & (df["metric"] == metric) & (df["shots"] == shots)]
    if sel.empty:
        have = df[df["task"] == task]
        if have.empty:
            raise KeyError(f"no task {task!r}; tasks include: {', '.join(sorted(df['task'].unique())[:20])}, ...")
        raise KeyError(
            f"no {metric!r} for {task!r} at {shots} shots in variant {variant!r}; available: "
            f"metrics {sorted(have['metric'].unique())}, shots {sorted(have['shots'].unique())}"
        )
    return sel.pivot_table(index="step", columns="model", values="value", aggfunc="first").sort_index()
