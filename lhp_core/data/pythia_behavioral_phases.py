"""Behavioural phases over training (Michaelov, Levy & Bergen, NeurIPS 2025).

For each checkpoint, upstream correlates the model's log-probability of each word of NaWoCo
(words in natural sentence contexts) with a predictor, over words:

* ``Pile_<n>gram`` / ``OpenWebText_<n>gram``: the word's n-gram log-probability (n = 1..5)
  from an infini-gram index of the Pile (Pythia's training data) or OpenWebText;
* ``ucd_cc``, ``wcd_cc``, ``ucd_wiki``, ``wcd_wiki``: contextual semantic similarity of the word
  to its context, from the cosine distance (``cd``) between the word's fastText vector (Common
  Crawl ``cc`` or Wikipedia ``wiki``) and the unweighted (``u``) or SGPT-weighted (``w``) mean
  of the context's vectors (upstream's plotting notebook, ``analyses/create_plots_final.Rmd``,
  labels them "Semantic Similarity"; the correlations are kept with upstream's sign).

:func:`correlations` reads ``analyses/all_cors.tsv`` and :func:`regressions` reads
``analyses/regression_performance.tsv``. Both keep Pythia by default (``family="pythia"``);
``family=None`` keeps every family (``gpt2``: the Stanford CRFM Mistral runs;
``openwebtext_pythia`` / ``openwebtext_mamba`` / ``openwebtext_rwkv``: the authors' own
OpenWebText-trained models).

Seeds: upstream labels the standard Pythia runs ``seed1234`` (the seed of the original
suite) and the PolyPythia re-runs of 14m-410m ``seed1``-``seed9``; the number is kept, so
``seed == 1234`` is the standard run (:data:`lhp_core.data.pythia_evals.STANDARD_SEED`). GPT-2 runs are labelled like
``x343 (durin)``: ``seed`` is 343 and ``run`` the upstream label.
"""
from __future__ import annotations

import re
from functools import lru_cache

import pandas as pd

from lhp_core.data.fetch import fetch
from lhp_core.data.pythia_evals import TOKENS_PER_STEP
from lhp_core.data.tables import read_csv

DATASET_ID = "pythia_behavioral_phases"
FAMILIES = ("pythia", "gpt2", "openwebtext_pythia", "openwebtext_mamba", "openwebtext_rwkv")
ID = ["family", "model", "size", "seed", "run", "step", "tokens_seen"]
CORRELATION_COLUMNS = ID + ["predictor", "kind", "corpus", "order", "weighting", "pearson_r", "spearman_rho"]
REGRESSION_COLUMNS = ID + ["regression", "ngrams", "semantic", "r2", "r2_val"]

_NGRAM = re.compile(r"^(?P<corpus>Pile|OpenWebText)_(?P<order>[1-5])gram$")
_SEMANTIC = re.compile(r"^(?P<weighting>[uw])cd_(?P<corpus>cc|wiki)$")
_SEED = re.compile(r"^(?:seed(?P<seed>\d+)|x(?P<xseed>\d+) \((?P<name>[^)]+)\))$")
_REGRESSION = re.compile(r"^(?P<ngrams>Matched|Unmatched)Ngram_(?P<weighting>[UW])CD(?P<corpus>CC|Wiki)$")
_VECTORS = {"cc": "CommonCrawl", "wiki": "Wikipedia"}


def _model(family: str, size: str) -> tuple[str, str]:
    size = size.replace("_", ".")  # upstream writes 1_4b for 1.4b
    return f"{family}-{size}", size


def _seed(label: str) -> int:
    m = _SEED.match(label)
    if m is None:
        raise ValueError(f"cannot read a seed from the upstream label {label!r} (expected seed<N> or x<N> (name))")
    return int(m["seed"] if m["seed"] is not None else m["xseed"])


def _ids(raw: pd.DataFrame) -> pd.DataFrame:
    models = [_model(f, s) for f, s in zip(raw["ModelFamily"], raw["ModelSize"])]
    step = raw["ModelStep"].astype("int64")
    pythia = raw["ModelFamily"] == "pythia"
    return pd.DataFrame(
        {
            "family": raw["ModelFamily"],
            "model": [m for m, _ in models],
            "size": [s for _, s in models],
            "seed": raw["ModelSeed"].map(_seed).astype("int64"),
            "run": raw["ModelSeed"],
            "step": step,
            # Only Pythia's tokens per step is known from this data; others stay missing.
            "tokens_seen": (step * TOKENS_PER_STEP).where(pythia).astype("Int64"),
        }
    )


def _select(df: pd.DataFrame, family: str | None) -> pd.DataFrame:
    if family is not None:
        if family not in FAMILIES:
            raise KeyError(f"unknown family {family!r}; valid families: {', '.join(FAMILIES)} (or None for all)")
        df = df[df["family"] == family]
    return df.reset_index(drop=True)


@lru_cache(maxsize=1)
def _correlations() -> pd.DataFrame:
    raw = read_csv(fetch(DATASET_ID, "analyses/all_cors.tsv"), sep="\t", keep_default_na=False)
    ids = _ids(raw)
    rows = []
    for predictor in raw["CorrelatingVariable"]:
        ngram, semantic = _NGRAM.match(predictor), _SEMANTIC.match(predictor)
        if ngram:
            rows.append(("ngram", ngram["corpus"], int(ngram["order"]), None))
        elif semantic:
            weighting = "unweighted" if semantic["weighting"] == "u" else "weighted"
            rows.append(("semantic", _VECTORS[semantic["corpus"]], pd.NA, weighting))
        else:
            raise ValueError(f"all_cors.tsv has an unknown predictor {predictor!r}")
    kinds = pd.DataFrame(rows, columns=["kind", "corpus", "order", "weighting"])
    df = pd.concat(
        [
            ids,
            pd.DataFrame({"predictor": raw["CorrelatingVariable"]}),
            kinds.astype({"order": "Int64"}),
            pd.DataFrame({"pearson_r": raw["PearsonR"].astype(float),
                          "spearman_rho": raw["SpearmanRho"].astype(float)}),
        ],
        axis=1,
    )
    return df.sort_values(["family", "model", "seed", "predictor", "step"], kind="stable").reset_index(drop=True)


def correlations(family: str | None = "pythia") -> pd.DataFrame:
    """Per-checkpoint correlation of word log-probability with each predictor.

    Parameters
    ----------
    family
        Model family to keep (one of :data:`FAMILIES`); ``None`` keeps all 20,034 rows.

    Returns
    -------
    pandas.DataFrame
        One row per (checkpoint, predictor), columns :data:`CORRELATION_COLUMNS`:
        ``family``; ``model`` (``"pythia-1.4b"``: upstream's ``1_4b`` written with a dot;
        ``"gpt2-small"``); ``size``; ``seed`` (int; 1234 = the standard Pythia run, 1-9 =
        PolyPythia re-runs); ``run`` (upstream seed label); ``step``; ``tokens_seen``
        (step x 2,097,152 for Pythia, missing for the other families, whose tokens per step
        this data does not give); ``predictor`` (upstream name, e.g. ``Pile_3gram``);
        ``kind`` (``"ngram"`` or ``"semantic"``); ``corpus`` (n-grams: ``"Pile"`` or
        ``"OpenWebText"``; semantic: the fastText vectors' ``"CommonCrawl"`` or
        ``"Wikipedia"``); ``order`` (1-5 for n-grams, missing for semantic); ``weighting``
        (semantic: ``"unweighted"`` / ``"weighted"`` (SGPT weights), else None); ``pearson_r``,
        ``spearman_rho`` (over NaWoCo words).
    """
    return _select(_correlations(), family)


@lru_cache(maxsize=1)
def _regressions() -> pd.DataFrame:
    raw = read_csv(fetch(DATASET_ID, "analyses/regression_performance.tsv"), sep="\t", keep_default_na=False)
    parts = []
    for name in raw["RegressionType"]:
        m = _REGRESSION.match(name)
        if m is None:
            raise ValueError(f"regression_performance.tsv has an unknown regression {name!r}")
        parts.append((m["ngrams"].lower(), f"{m['weighting'].lower()}cd_{m['corpus'].lower()}"))
    df = pd.concat(
        [
            _ids(raw),
            pd.DataFrame(
                {
                    "regression": raw["RegressionType"],
                    "ngrams": [p[0] for p in parts],
                    "semantic": [p[1] for p in parts],
                    "r2": raw["Rsquared"].astype(float),
                    "r2_val": raw["Rsquared_val"].astype(float),
                }
            ),
        ],
        axis=1,
    )
    return df.sort_values(["family", "model", "seed", "regression", "step"], kind="stable").reset_index(drop=True)


def regressions(family: str | None = "pythia") -> pd.DataFrame:
    """R² of upstream's OLS regressions of word log-probability on 1-gram + 5-gram + semantic similarity.

    Parameters
    ----------
    family
        Model family to keep (one of :data:`FAMILIES`); ``None`` keeps all 11,448 rows.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`REGRESSION_COLUMNS`: the identifiers of :func:`correlations`, then
        ``regression`` (upstream name, e.g. ``MatchedNgram_UCDCC``), ``ngrams``
        (``"matched"``: n-grams of the model's own training corpus, the Pile for Pythia and
        OpenWebText for the other families, the "same corpus" n-grams of upstream's plotting
        notebook; ``"unmatched"``: the other corpus), ``semantic`` (the similarity predictor
        in :func:`correlations`' naming, e.g. ``ucd_cc``), ``r2`` (training fit) and
        ``r2_val`` (held-out words).
    """
    return _select(_regressions(), family)
