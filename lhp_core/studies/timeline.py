"""The Timeline: every study's events on one training axis, and the order they come in.

No single paper answers *in what order do these things happen during training?* Each study of the
book locates its own events (a transition, a peak, a threshold crossing, an onset) with an interval;
:func:`run` calls every study with the parameters its chapter ran with (so it reads their cached
results), lines the events up on tokens seen, per model, and asks whether any pair of events comes in
one order in one model and the other order in another (:func:`pair_order`; overlapping intervals leave
a model's order open). Published Pythia measurements (:mod:`lhp_core.studies.published`, and the emergence
thresholds of Pythia's own evaluations) give the same view at real scale.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from lhp_core import book, schema
from lhp_core.findings import Finding
from lhp_core.metrics import changepoint
from lhp_core.studies import brain, emergence, experts, published, reading
from lhp_core.studies import suite as suite_study
from lhp_core.suites import size_order

#: Studies of the suite whose events the Timeline lines up, by chapter.
STUDIES = {"suite": suite_study, "reading": reading, "brain": brain, "emergence": emergence, "experts": experts}
SOURCE = "this book"


def _call(module, args: dict):
    """``module.run`` with the arguments it takes (a chapter's parameters cell may hold more)."""
    sig = inspect.signature(module.run)
    return module.run(**{k: v for k, v in args.items() if k in sig.parameters}, **(
        {"progress": False} if "progress" in sig.parameters else {}))


@dataclass
class Timeline:
    """The studies' results and their events; see :func:`run`."""

    suite_id: str
    studies: dict
    published: published.Published | None
    pythia_thresholds: pd.DataFrame | None = None
    params: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ events
    def events(self) -> pd.DataFrame:
        """Every study's events on the suite (:data:`lhp_core.metrics.events.COLUMNS`)."""
        frames = [s.events() for s in self.studies.values()]
        return pd.concat([f for f in frames if len(f)], ignore_index=True)

    def pythia_events(self) -> pd.DataFrame:
        """Pooled events of the published Pythia data and Pythia's emergence thresholds."""
        frames = []
        if self.published is not None:
            frames.append(self.published.events())
        if self.pythia_thresholds is not None:
            frames.append(self.pythia_thresholds)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def event_table(self, events: pd.DataFrame | None = None) -> pd.DataFrame:
        """Per model, its found events ordered in time: step with interval, tokens, and what it overlaps."""
        ev = self.events() if events is None else events
        return ordered_events(ev)

    def order_table(self, events: pd.DataFrame | None = None) -> pd.DataFrame:
        return pair_orders(self.events() if events is None else events)

    # ------------------------------------------------------------------ curves
    def panels(self) -> pd.DataFrame:
        """Every measure the studies compute, one long table ``panel, model, step, tokens_seen, value``
        plus ``null`` (the chance or null level where the study defines one)."""
        rows = []
        s = self.studies

        def add(panel: str, da, null=None) -> None:
            df = da.to_dataframe(name="value").reset_index()
            df = df[[schema.MODEL, schema.STEP, schema.TOKENS_SEEN, "value"]].dropna(subset=["value"])
            df["panel"] = panel
            df["null"] = np.nan if null is None else null
            rows.append(df)

        if "suite" in s:
            rec = s["suite"].record
            add("held-out loss (nats/token)", rec["val_loss"])
            add("repeated-sequence advantage (nats/token)", s["suite"].repeat_gap, 0.0)
        if "reading" in s:
            r = s["reading"]
            for v in r.variants:
                tag = "" if v == "plain" else f" ({v})"
                h = r.heads[v]
                for score, name in (("induction", "largest induction score"),
                                    ("prev_token", "largest previous-token score")):
                    add(name, _tag(h[score].max([schema.LAYER, schema.HEAD]), tag))
                add("ICL score (nats)", _tag(r.icl[v]["icl"], tag), 0.0)
                add("PPP, Natural Stories SPR (nats/word)", _tag(r.ppp[v, "ns_spr"]["ppp"], tag), 0.0)
                add("PPP, Provo gaze (nats/word)", _tag(r.ppp[v, "provo_gaze"]["ppp"], tag), 0.0)
        if "brain" in s:
            b = s["brain"]
            fin = float(b.scores["null_q95"].max(schema.LAYER).max())
            add("brain score r (best layer)", b.best["r"], fin)
            add("instruction following (share)", b.following["instruction_following"])
            add("POS probe selectivity (best layer)", b.probe["selectivity"].max(schema.LAYER), 0.0)
        if "emergence" in s:
            e = s["emergence"]
            add("task battery: mean accuracy", e.battery["accuracy"].mean(schema.TASK),
                float(e.battery["chance"].mean()))
            add("task battery: mean probability of the correct option", e.battery["prob_correct"].mean(schema.TASK))
        if "experts" in s:
            x = s["experts"]
            add("expert RSA with SPoSE (Spearman)", x.alignment["rsa_jaccard"],
                float(x.alignment["null_q95"].max()))
        return pd.concat(rows, ignore_index=True)

    # ------------------------------------------------------------------ claims
    def findings(self) -> list[Finding]:
        pairs = self.order_table()
        text, verdict = order_verdict(pairs[pairs.n_models >= 2], "models", self.suite_id)
        out = [Finding("timeline_order_across_sizes",
                       "developmental events come in the same order whatever the model size",
                       SOURCE, text, self.suite_id, verdict)]
        if self.published is not None:
            ppairs = pair_orders(self.pythia_events())
            text, verdict = order_verdict(ppairs[ppairs.n_models >= 2], "sizes", "Pythia")
            out.append(Finding("timeline_order_pythia",
                               "developmental events come in the same order whatever the model "
                               "size (Pythia, published measurements)", SOURCE, text,
                               published.SUITE, verdict))
        return out

    def numbers(self) -> dict:
        ev = self.events()
        found = ev[ev.found]
        pairs = self.order_table()
        out = {"suite": self.suite_id, "n_events": int(len(ev)), "n_events_found": int(len(found)),
               "n_models": int(ev.model.nunique()), "n_event_pairs": int((pairs.n_models >= 2).sum()),
               **{f"n_event_pairs_{o}": int((pairs[pairs.n_models >= 2].order == o).sum()) for o in ORDERS},
               "events_inside_step_range": bool(_inside(found, self.studies)),
               "intervals_contain_steps": bool(((found.step_lo <= found.step) & (found.step <= found.step_hi)).all())}
        if self.published is not None:
            pev = self.pythia_events()
            out.update(pythia_n_events=int(len(pev)), pythia_n_events_found=int(pev.found.sum()))
        return out


def _exceptions(bad: pd.DataFrame, n: int = 2) -> str:
    """The first of ``bad`` pairs with their relation per model, for a finding's text."""
    if bad.empty:
        return ""
    shown = "; ".join(f"{r.first} vs {r.second} ({r.relations})" for r in bad.head(n).itertuples())
    more = f" and {len(bad) - n} more" if len(bad) > n else ""
    return f" ({shown}{more})"


def _tag(da, tag: str):
    if not tag:
        return da
    return da.assign_coords({schema.MODEL: [f"{m}{tag}" for m in da[schema.MODEL].values]})


def _inside(found: pd.DataFrame, studies: dict) -> bool:
    """Every found event's step lies within its model's saved steps."""
    if "suite" not in studies:
        return True
    suite = studies["suite"].suite
    for r in found.itertuples():
        base = r.model.split(" (")[0]
        steps = suite.steps(base) if base in suite.models else None
        if steps is not None and not (steps[0] <= r.step <= steps[-1]):
            return False
    return True


def event_name(row) -> str:
    return f"{row.measure}: {row.kind}"


def ordered_events(events: pd.DataFrame) -> pd.DataFrame:
    """Per model, its found events in time order: ``model, order, event, step, step_lo, step_hi, tokens_seen,
    overlaps`` (the other events of that model whose intervals share a step with this one)."""
    found = events[events.found].copy()
    found["event"] = [event_name(r) for r in found.itertuples()]
    rows = []
    # Models by size, each twin variant ("l (copyreg)") after the plain models.
    order = {m: (" (" in m, i) for i, m in enumerate(size_order(sorted({x.split(" (")[0] for x in found.model})))}
    rank = {m: (True, order[m.split(" (")[0]][1]) if " (" in m else order[m] for m in found.model.unique()}
    for m, g in sorted(found.groupby("model", sort=False), key=lambda kv: rank[kv[0]]):
        g = g.sort_values(["step", "step_lo"])
        for i, r in enumerate(g.itertuples(), 1):
            others = [o.event for o in g.itertuples() if o.event != r.event
                      and changepoint.overlap(r.step_lo, r.step_hi, o.step_lo, o.step_hi)]
            rows.append({"model": m, "order": i, "event": r.event, "step": r.step, "step_lo": r.step_lo,
                         "step_hi": r.step_hi, "tokens_seen": r.tokens_seen, "overlaps": "; ".join(others)})
    return pd.DataFrame(rows, columns=["model", "order", "event", "step", "step_lo", "step_hi", "tokens_seen",
                                       "overlaps"])


def relation(a_lo: float, a_hi: float, b_lo: float, b_hi: float) -> str:
    """``"before"`` (a ends before b starts), ``"after"`` or ``"overlap"`` of two intervals."""
    if a_hi < b_lo:
        return "before"
    if b_hi < a_lo:
        return "after"
    return "overlap"


ORDERS = ("reversed", "same", "unresolved")
"""How a pair of events is ordered across models: ``reversed`` (before in one model, after in another),
``same`` (one order in every model that resolves it, at least two do) or ``unresolved``."""


def pair_order(relations: list[str]) -> str:
    """The order across models of one pair of events, from its relation in each model.

    Overlapping intervals leave a model's order open, so they neither confirm nor contradict an
    order: a pair is ``reversed`` when one model has it before and another after, ``same`` when at
    least two models resolve it and agree, else ``unresolved``.
    """
    resolved = {r for r in relations if r != "overlap"}
    if resolved == {"before", "after"}:
        return "reversed"
    return "same" if sum(r != "overlap" for r in relations) >= 2 else "unresolved"


def pair_orders(events: pd.DataFrame) -> pd.DataFrame:
    """For every pair of events found in at least one model: their relation in each model and their
    order across models (:func:`pair_order`).

    Returns
    -------
    DataFrame ``first, second, n_models, relations`` (model: relation, ...), ``order``.
    """
    columns = ["first", "second", "n_models", "relations", "order"]
    found = events[events.found].copy()
    if found.empty:
        return pd.DataFrame(columns=columns)
    found["event"] = [event_name(r) for r in found.itertuples()]
    # One interval per (model, event): several rows (e.g. per seed) keep the pooled or first one.
    per = found.drop_duplicates(["model", "event"]).set_index(["model", "event"])
    names = sorted(found["event"].unique())
    rows = []
    for a, b in combinations(names, 2):
        rel = {}
        for m in found["model"].unique():
            if (m, a) in per.index and (m, b) in per.index:
                x, y = per.loc[(m, a)], per.loc[(m, b)]
                rel[m] = relation(x.step_lo, x.step_hi, y.step_lo, y.step_hi)
        if rel:
            rows.append({"first": a, "second": b, "n_models": len(rel),
                         "relations": ", ".join(f"{m}: {v}" for m, v in rel.items()),
                         "order": pair_order(list(rel.values()))})
    return pd.DataFrame(rows, columns=columns)


def order_verdict(tested: pd.DataFrame, units: str, of: str) -> tuple[str, str]:
    """The measured text and verdict of "events come in the same order whatever the size", from the
    pairs found in at least two ``units`` (models, sizes) ``of`` a suite: contradicted by any reversed
    pair, held where at least one pair is resolved and none reverses."""
    n = tested["order"].value_counts().reindex(list(ORDERS), fill_value=0)
    text = (f"{len(tested)} pairs of events found in at least two {units} of {of}: {n['same']} in one order in "
            f"every {units[:-1]} that resolves it (at least two do), {n['reversed']} reversed between {units}"
            + _exceptions(tested[tested.order == "reversed"])
            + f", {n['unresolved']} overlapping in all but at most one {units[:-1]}.")
    if n["reversed"]:
        return text, "contradicted"
    return text, "holds" if n["same"] else "not measurable here"


def run(profile: str = "default", studies=tuple(STUDIES), with_published: bool = True, suite: str | None = None,
        models: list[str] | None = None, steps: list[int] | None = None) -> Timeline:
    """Run every study with the parameters its chapter runs with at ``profile`` (their cached results),
    plus the published Pythia data; ``suite``, ``models``, ``steps`` move the chapters onto another suite
    as ``lhp book --suite`` does (:func:`lhp_core.book.on_suite`)."""
    moved = {"suite": suite, "models": models, "steps": steps} if suite is not None else None
    results = {}
    for name in studies:
        results[name] = _call(STUDIES[name], book.chapter_arguments(profile, name, suite=moved))
    pub = thresholds = None
    if with_published:
        pub_args = (book.chapter_arguments(profile, "published")
                    if (book.repo_root() / "book" / "published.ipynb").is_file() else {})
        pub = _call(published, pub_args)
        if "emergence" in results:
            thresholds = results["emergence"].pythia_events()
    suite_id = book.chapter_arguments(profile, "suite", suite=moved)["suite"] if "suite" in results else ""
    return Timeline(suite_id, results, pub, thresholds, params={"profile": profile})
