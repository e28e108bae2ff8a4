"""Findings: a study's claims, what this book measured, and a verdict in words.

Each study (:mod:`lhp_core.studies`) turns its numbers into :class:`Finding` s with a named,
tested rule per claim. A chapter shows them first (:func:`admonition`) and records them with
its other numbers (:func:`to_record`); ``lhp book`` reads every executed chapter's record and
writes the book's "findings at a glance" table (:func:`from_records`, :func:`markdown_table`),
so the table is always the one the profile that built the book measured.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

import pandas as pd
from IPython.display import Markdown

#: The verdicts a finding can have, in words a reader understands without the method.
VERDICTS = ("holds", "does not hold at this scale", "contradicted", "not measurable here")
_PREFIX = "finding"
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_FIELDS = ("claim", "source", "measured", "suite", "verdict", "order")


@dataclass(frozen=True)
class Finding:
    """One claim of a study and what this book measured about it.

    Attributes
    ----------
    id
        Short id, unique within the book (``"ppp_peak_at_transition"``).
    claim
        The claim in a sentence, as the paper makes it.
    source
        Who claimed it (``"Aoyama & Wilcox 2025"``).
    measured
        What this book measured: numbers with intervals and the models they come from.
    suite
        The suite (or data set) the numbers come from.
    verdict
        One of :data:`VERDICTS`.
    order
        Position among the chapter's findings.
    """

    id: str
    claim: str
    source: str
    measured: str
    suite: str
    verdict: str
    order: int = 0

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise ValueError(f"finding id {self.id!r} must be lower-case letters, digits and _ (e.g. 'ppp_peak')")
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} of finding {self.id!r} is not one of {VERDICTS}")


def to_record(findings: Iterable[Finding]) -> dict[str, str | int]:
    """Flat ``record(...)`` entries: ``finding_<id>_<field>`` for every field."""
    out: dict[str, str | int] = {}
    for i, f in enumerate(findings):
        for name in _FIELDS:
            out[f"{_PREFIX}_{f.id}_{name}"] = i if name == "order" else getattr(f, name)
    return out


def from_record(record: Mapping[str, object]) -> list[Finding]:
    """The findings a chapter recorded (:func:`to_record`), in the chapter's order."""
    ids = sorted({k[len(_PREFIX) + 1: -len("_verdict")] for k in record
                  if k.startswith(f"{_PREFIX}_") and k.endswith("_verdict")})
    out = []
    for fid in ids:
        values = {name: record.get(f"{_PREFIX}_{fid}_{name}") for name in _FIELDS}
        missing = [k for k, v in values.items() if v is None]
        if missing:
            raise KeyError(
                f"record has finding {fid!r} without {missing}; record all of {_FIELDS} (findings.to_record)"
            )
        out.append(Finding(fid, str(values["claim"]), str(values["source"]), str(values["measured"]),
                           str(values["suite"]), str(values["verdict"]), int(values["order"])))
    return sorted(out, key=lambda f: f.order)


def from_records(records: Mapping[str, Mapping[str, object]]) -> pd.DataFrame:
    """One row per finding of every chapter, in the given chapter order.

    Parameters
    ----------
    records
        ``chapter -> record`` (:func:`lhp_core.book.read_record` of each executed chapter).

    Returns
    -------
    DataFrame with ``chapter``, ``id`` and the :class:`Finding` fields.
    """
    rows = []
    for chapter, rec in records.items():
        for f in from_record(rec):
            rows.append({"chapter": chapter, **{k.name: getattr(f, k.name) for k in fields(Finding)}})
    return pd.DataFrame(rows, columns=["chapter", *[k.name for k in fields(Finding)]])


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(table: pd.DataFrame, link: bool = True) -> str:
    """The findings as a Markdown table: claim, what was measured, on which suite, verdict.

    With ``link``, each row names its chapter as a link (``{doc}`` role of Jupyter Book).
    """
    if table.empty:
        return "_No chapter recorded findings._"
    lines = ["| claim | measured here | suite | verdict |", "|---|---|---|---|"]
    for r in table.itertuples():
        where = f" ({{doc}}`{r.chapter}`)" if link else ""
        lines.append(f"| {_cell(r.claim)} ({_cell(r.source)}){where} | {_cell(r.measured)} | {_cell(r.suite)} "
                     f"| **{_cell(r.verdict)}** |")
    return "\n".join(lines)


def admonition_text(findings: Iterable[Finding], title: str = "What this chapter found") -> str:
    """MyST admonition (colon fence) naming the suites measured on, then each claim with its numbers and verdict."""
    findings = list(findings)
    items = [f"- **{f.verdict.capitalize()}**: {f.claim} ({f.source}). {f.measured}" for f in findings]
    body = "\n".join(items) if items else "- No claim of this chapter could be tested here."
    if findings:  # the book may run on any suite (lhp book --suite): each chapter says which
        body = f"Measured on: {'; '.join(dict.fromkeys(str(f.suite) for f in findings))}.\n\n{body}"
    return f":::{{admonition}} {title}\n:class: tip\n{body}\n:::\n"


def admonition(findings: Iterable[Finding], title: str = "What this chapter found"):
    """The chapter's opening box (an ``IPython.display.Markdown`` object the book renders as MyST)."""
    return Markdown(admonition_text(findings, title))
