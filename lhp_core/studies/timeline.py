"""The Timeline: every study's measures and events on one training axis, and the order they come in.

No single paper answers *in what order do these things happen during training?* Each study of the
book locates its own events (a transition, a peak, a threshold crossing, an onset) with an interval.
The Timeline reads nothing of a study but what it contributes (:mod:`lhp_core.studies.contributions`):
its curves (:class:`lhp_core.metrics.events.Curve`) and its events. :func:`run` calls every registered
contributor with the parameters of its chapter at a profile (:func:`lhp_core.profiles.parameters`, so it
reads the cache its chapter filled), draws one panel per curve, lines the events up on tokens seen, per
model, and asks whether any pair of events comes in one order in one model and the other order in another
(:func:`pair_order`; overlapping intervals leave a model's order open). Published Pythia measurements
(:mod:`lhp_core.studies.published`, and the emergence thresholds of Pythia's own evaluations) give the same
view at real scale.

A new measure reaches the Timeline by registering a contributor (:func:`register`, see ``CONTRIBUTING.md``).
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from lhp_core import config, profiles, schema
from lhp_core.findings import Finding
from lhp_core.metrics import changepoint
from lhp_core.metrics.events import COLUMNS, Curve
from lhp_core.studies import published
from lhp_core.studies.contributions import Contribution, contributors, register, unregister
from lhp_core.suites import size_order

__all__ = ["BUILT_IN", "Contribution", "Timeline", "contributors", "register", "run", "unregister"]

#: The book's studies that contribute to the Timeline, in panel order; each registers itself on import.
BUILT_IN = ("lhp_core.studies.suite", "lhp_core.studies.reading", "lhp_core.studies.ablation", "lhp_core.studies.brain",
            "lhp_core.studies.emergence", "lhp_core.studies.experts", "lhp_core.studies.words")
for _module in BUILT_IN:
    importlib.import_module(_module)
SOURCE = "this book"


def _call(fn: Callable[..., Any], args: Mapping[str, Any]) -> Any:
    """``fn`` with the arguments it takes (a profile gives every chapter the common ones), quietly."""
    sig = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.values()):
        return fn(**args)
    return fn(**{k: v for k, v in args.items() if k in sig and k != "progress"},
              **({"progress": False} if "progress" in sig else {}))


def _checked(name: str, result: Any) -> tuple[list[Curve], pd.DataFrame]:
    """A contributor's curves and events, after checking the protocol (:mod:`lhp_core.studies.contributions`)."""
    for method in ("curves", "events"):
        if not callable(getattr(result, method, None)):
            raise TypeError(f"Timeline contributor {name!r} returned {type(result).__name__}, which has no "
                            f"{method}(); return an object with curves() and events()")
    curves = list(result.curves())
    bad = [type(c).__name__ for c in curves if not isinstance(c, Curve)]
    if bad:
        raise TypeError(f"Timeline contributor {name!r}: curves() must return lhp_core.metrics.events.Curve, got {bad}")
    events = result.events()
    if list(events.columns) != COLUMNS:
        raise ValueError(f"Timeline contributor {name!r}: events() has columns {list(events.columns)}; build it with "
                         "lhp_core.metrics.events.event_table")
    names = [c.name for c in curves]
    orphans = sorted(set(events["measure"]) - set(names))
    if orphans:
        raise ValueError(f"Timeline contributor {name!r} has events on {orphans} but no curve of that name; add "
                         f"a Curve with that name to its curves() (it has {names})")
    return curves, events


@dataclass
class Timeline:
    """The contributors' results, curves and events; see :func:`run`."""

    suite_id: str
    studies: dict[str, Any]
    published: published.Published | None
    pythia_thresholds: pd.DataFrame | None = None
    params: dict = field(default_factory=dict)
    _curves: list[Curve] = field(default_factory=list, repr=False)
    _events: list[pd.DataFrame] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if not self._curves:
            for name, result in self.studies.items():
                curves, events = _checked(name, result)
                self._curves += curves
                self._events.append(events)
        seen: dict[str, int] = {}
        for c in self._curves:
            seen[c.name] = seen.get(c.name, 0) + 1
        twice = [n for n, k in seen.items() if k > 1]
        if twice:
            raise ValueError(f"curves {twice} are given by more than one contributor; a measure's name is written "
                             "once, where it is defined: rename one of them")

    # ------------------------------------------------------------------ events
    def events(self) -> pd.DataFrame:
        """Every contributor's events on the suite (:data:`lhp_core.metrics.events.COLUMNS`)."""
        frames = [f for f in self._events if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)

    def pythia_events(self) -> pd.DataFrame:
        """Pooled events of the published Pythia data and of what contributors measured on it."""
        frames = []
        if self.published is not None:
            frames.append(self.published.events())
        if self.pythia_thresholds is not None:
            frames.append(self.pythia_thresholds)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)

    def event_table(self, events: pd.DataFrame | None = None) -> pd.DataFrame:
        """Per model, its found events ordered in time: step with interval, tokens, and what it overlaps."""
        ev = self.events() if events is None else events
        return ordered_events(ev)

    def order_table(self, events: pd.DataFrame | None = None) -> pd.DataFrame:
        return pair_orders(self.events() if events is None else events)

    # ------------------------------------------------------------------ curves
    def curves(self) -> list[Curve]:
        """Every contributor's curves, in contributor order."""
        return list(self._curves)

    def panels(self) -> pd.DataFrame:
        """Every curve, one long table ``panel, measure, units, model, step, tokens_seen, value, null``: ``panel``
        is the curve's label (name and units), ``measure`` its name (the ``measure`` of the events on it) and
        ``null`` its chance or null level (NaN where it has none)."""
        rows = [c.frame().assign(panel=c.label, measure=c.name, units=c.units,
                                 null=np.nan if c.null is None else float(c.null)) for c in self._curves]
        columns = ["panel", "measure", "units", schema.MODEL, schema.STEP, schema.TOKENS_SEEN, "value", "null"]
        return pd.concat(rows, ignore_index=True)[columns] if rows else pd.DataFrame(columns=columns)

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
               "events_inside_step_range": bool(_inside(found, self._curves)),
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


def _inside(found: pd.DataFrame, curves: Sequence[Curve]) -> bool:
    """Every found event's step lies within the steps its model has on the Timeline's curves."""
    span: dict[str, tuple[float, float]] = {}
    for c in curves:
        f = c.frame()
        for m, g in f.groupby(schema.MODEL):
            lo, hi = span.get(m, (np.inf, -np.inf))
            span[m] = (min(lo, float(g[schema.STEP].min())), max(hi, float(g[schema.STEP].max())))
    return all(r.model in span and span[r.model][0] <= r.step <= span[r.model][1] for r in found.itertuples())


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


def run(profile: str = "default", studies: Sequence[str] | None = None, with_published: bool = True,
        params: Mapping[str, Mapping[str, Any]] | None = None, suite: str | None = None,
        models: Sequence[str] | None = None, steps: Sequence[int] | None = None) -> Timeline:
    """Run every registered contributor with the parameters of its chapter at ``profile`` (so it reads the
    cache its chapter filled), plus the published Pythia data.

    Parameters
    ----------
    profile
        A profile of ``book/profiles.yml`` (:func:`lhp_core.profiles.parameters`).
    studies
        Names of contributors to run (default: all, the built-in studies first in :data:`BUILT_IN` order).
    with_published
        Also load the published Pythia measurements (:mod:`lhp_core.studies.published`) and the events a
        contributor's result measured on them (its optional ``pythia_events()``).
    params
        Per contributor name, parameters on top of its chapter's.
    suite, models, steps
        Replace the profile's common ``suite``, ``models`` and ``steps`` for every contributor; on another
        suite the chapters move as ``lhp book --suite`` moves them (:func:`lhp_core.profiles.on_suite`:
        models and steps not given are all the suite has, a ``-copyreg`` companion follows the suite).
    """
    registered = contributors()
    built_in = [m.rsplit(".", 1)[1] for m in BUILT_IN]
    names = list(studies) if studies is not None else sorted(
        registered, key=lambda n: built_in.index(n) if n in built_in else len(built_in))
    unknown = [n for n in names if n not in registered]
    if unknown:
        raise KeyError(f"no Timeline contributor named {unknown}; registered: {', '.join(registered)}")
    extra = sorted(set(params or {}) - set(names))
    if extra:
        raise KeyError(f"params for {extra}, which this run does not include; studies={names}")
    common = {k: v for k, v in (("suite", suite), ("models", models), ("steps", steps)) if v is not None}
    moved = {"suite": suite, "models": models, "steps": steps} if suite is not None else None
    results = {}
    with config.using_dtype(profiles.load().get(profile, {}).get("dtype")):  # the precision its chapters ran in
        for name in names:
            c = registered[name]
            args = {**profiles.parameters(profile, c.chapter, suite=moved), **({} if moved else common),
                    **(params or {}).get(name, {})}
            results[name] = _call(c.run, args)
    pub = thresholds = None
    if with_published:
        pub = _call(published.run, profiles.parameters(profile, "published"))
        found = [r.pythia_events() for r in results.values() if callable(getattr(r, "pythia_events", None))]
        thresholds = pd.concat(found, ignore_index=True) if found else None
    suite_id = str(common.get("suite", profiles.parameters(profile, "suite")["suite"]))
    return Timeline(suite_id, results, pub, thresholds, params={"profile": profile, **common})
