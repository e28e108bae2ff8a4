"""Hub suites whose checkpoints are named branches, as OLMo publishes them.

OLMo (Groeneveld et al., 2024) and OLMo 2 (OLMo et al., 2025) push every intermediate
checkpoint as a branch of the model repo, named by step and tokens seen::

    step1000-tokens4B                          # OLMo 1: allenai/OLMo-1B-hf, allenai/OLMo-7B-0424-hf
    stage1-step140000-tokens294B               # OLMo 2 pre-training (stage 1)
    stage2-ingredient1-step11000-tokens47B     # OLMo 2 mid-training soups (not a point on the step axis)

The step schedule is not a formula, so the branch list is read once from the hub
(``huggingface_hub.list_repo_refs``) and kept under ``config.cache_dir()/hub_refs/`` for offline
use; with ``HF_HUB_OFFLINE=1`` and no such list, the revisions already in the local HF cache are
used. ``tokens_seen`` is what the branch name says (rounded to a billion tokens upstream).
A suite's step axis is one stage: un-staged names for OLMo 1, ``stage1`` for OLMo 2.
"""
from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from huggingface_hub import constants, list_repo_refs

from lhp_core import config
from lhp_core.suite_base import HubSuite, SuiteError

_REVISION = re.compile(
    r"^(?:stage(?P<stage>\d+)-)?(?:ingredient(?P<ingredient>\d+)-)?step(?P<step>\d+)-tokens(?P<tokens>\d+)B$"
)


@dataclass(frozen=True)
class Revision:
    """One parsed branch name; ``stage``/``ingredient`` are None where the name has none."""

    name: str
    step: int
    tokens: int
    stage: int | None = None
    ingredient: int | None = None


def parse_revision(name: str) -> Revision | None:
    """``"stage1-step140000-tokens294B"`` -> ``Revision(step=140000, tokens=294e9, stage=1)``;
    None for branches that are not checkpoints (``main``, ``pr/3``)."""
    m = _REVISION.match(name)
    if m is None:
        return None
    opt = {k: int(m[k]) for k in ("stage", "ingredient") if m[k] is not None}
    return Revision(name, int(m["step"]), int(m["tokens"]) * 10**9, **opt)


def refs_file(repo: str) -> Path:
    """Where the branch list of ``repo`` is kept (one name per line); a user may write it by hand."""
    return config.cache_dir() / "hub_refs" / (repo.replace("/", "--") + ".txt")


def _hf_cache_refs(repo: str) -> list[str]:
    root = Path(os.environ.get("HF_HUB_CACHE", constants.HF_HUB_CACHE)) / f"models--{repo.replace('/', '--')}" / "refs"
    return sorted(p.name for p in root.iterdir() if p.is_file()) if root.is_dir() else []


def branch_names(repo: str, refresh: bool = False, wanted: Callable[[str], bool] | None = None) -> list[str]:
    """Branch names of ``repo``: the kept list, else the hub (then kept), else the local HF cache.

    ``wanted``: which names are checkpoints (default: OLMo's, :func:`parse_revision`); the HF
    cache counts as the branch list only when it holds one of them.
    """
    wanted = wanted or (lambda n: parse_revision(n) is not None)
    path = refs_file(repo)
    if path.exists() and not refresh:
        return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if not offline:
        try:
            names = sorted(b.name for b in list_repo_refs(repo).branches)
        except Exception as err:  # no network, unknown repo, rate limit: fall back to the HF cache
            reason = f"the hub could not be asked ({type(err).__name__}: {err})"
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text("\n".join(names) + "\n")
            os.replace(tmp, path)
            return names
    else:
        reason = "HF_HUB_OFFLINE is set"
    names = _hf_cache_refs(repo)
    if not any(wanted(n) for n in names):
        raise SuiteError(
            f"the checkpoint branches of {repo} are unknown: {reason}, the local HF cache holds none of them, and no "
            f"list is kept at {path}. "
            "Run once with network access (the list is kept there), or write its branch names there, one per line"
        )
    return names


class RevisionSuite(HubSuite):
    """Models whose checkpoints are named branches ``[stage<K>-]step<N>-tokens<M>B``.

    Parameters
    ----------
    id
        Registry id (``"olmo"``).
    repos
        Model id -> hub repo, smallest first (``{"OLMo-1B-hf": "allenai/OLMo-1B-hf"}``).
    stage
        The stage whose branches form the step axis (None: branch names without a stage).
    """

    org = "allenai"
    shared_tokenizer = False  # OLMo 1 and OLMo 2 sizes are released with their own tokenizer files

    def __init__(self, id: str, repos: dict[str, str], stage: int | None = None) -> None:
        self.id = id
        self.repos = dict(repos)
        self.stage = stage
        self._revisions: dict[str, dict[int, Revision]] = {}

    @property
    def models(self) -> list[str]:
        return list(self.repos)

    def resolve_model(self, model: str) -> str:
        # Accept the model id, the hub repo ("allenai/OLMo-1B-hf") and a size ("1b", "7B").
        for m, repo in self.repos.items():
            if model in (m, repo) or model.lower() in (m.lower(), _size(m)):
                return m
        return super().resolve_model(model)

    def revisions(self, model: str) -> dict[int, Revision]:
        """Step -> revision of this suite's stage, read once per model."""
        model = self.resolve_model(model)
        if model not in self._revisions:
            out: dict[int, Revision] = {}
            for name in branch_names(self.repos[model]):
                rev = parse_revision(name)
                if rev is not None and rev.stage == self.stage and rev.ingredient is None:
                    if rev.step in out:
                        raise SuiteError(f"{self.repos[model]} has two branches for step {rev.step}: "
                                         f"{out[rev.step].name}, {name}")
                    out[rev.step] = rev
            if not out:
                raise SuiteError(f"no branch of {self.repos[model]} names a stage-{self.stage} checkpoint "
                                 f"(step<N>-tokens<M>B); branches seen in {refs_file(self.repos[model])}")
            self._revisions[model] = dict(sorted(out.items()))
        return self._revisions[model]

    def steps(self, model: str) -> list[int]:
        return list(self.revisions(model))

    def tokens_seen(self, model: str, step: int) -> int:
        self.check_step(self.resolve_model(model), int(step))
        return self.revisions(model)[int(step)].tokens

    def tokens_source(self, model: str) -> str:
        return "from the branch names (step<N>-tokens<M>B; rounded to a billion tokens upstream)"

    def hub_ref(self, model: str, step: int) -> tuple[str, str]:
        """``(repo_id, branch)``, e.g. ``("allenai/OLMo-1B-hf", "step20000-tokens84B")``."""
        model = self.resolve_model(model)
        self.check_step(model, int(step))
        return self.repos[model], self.revisions(model)[int(step)].name


# A step in a revision name: step1000, step_1000, step-1000, global_step1000, checkpoint-1000, with
# OLMo's stage prefix and tokens suffix (stage1-step1000-tokens4B); tokens may be K, M, B or T.
_NAMED_STEP = re.compile(
    r"^(?:stage\d+-)?(?:global_)?(?:step[-_]?|checkpoint-)(?P<step>\d+)(?:-tokens(?P<tokens>\d+)(?P<unit>[KMBT]))?$"
)
_UNITS = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}


def step_of(name: str) -> tuple[int, int | None] | None:
    """``(step, tokens or None)`` a revision name carries (``step1000``, ``step1000-tokens4B``,
    ``checkpoint-1000``, ``global_step1000``), or None (``main``, ``v1.0``)."""
    m = _NAMED_STEP.match(name)
    if m is None:
        return None
    return int(m["step"]), int(m["tokens"]) * _UNITS[m["unit"]] if m["tokens"] else None


class HubRevisionsSuite(HubSuite):
    """One hub repo at the revisions a user names: ``get_suite("org/name", revisions=[...])``.

    Each entry of ``revisions`` is a branch or tag (``main``, ``step1000``), ``NAME=STEP`` to give
    its step, or a glob pattern (``step*``, ``checkpoint-*``) over the repo's branches
    (:func:`branch_names`: the kept list, the hub, or offline the local HF cache).

    Steps: ``NAME=STEP`` where given, else what the name carries (:func:`step_of`); when no
    revision carries a step, the order given (0, 1, 2, ...). A mix of revisions with and without a
    step is refused (give the others ``NAME=STEP``), as is a pattern match without one.
    ``tokens_seen``: ``step x tokens_per_step`` when given, else the ``-tokens<M>B`` of the names;
    one revision of unknown step is step 0 with 0 tokens (:meth:`tokens_source` says so).
    """

    form = "hub repo at named revisions"
    shared_tokenizer = True

    def __init__(self, repo: str, revisions: Sequence[str], tokens_per_step: int | None = None) -> None:
        if isinstance(revisions, str) or not revisions:
            raise SuiteError(f"revisions of {repo} must be a list of names or patterns, got {revisions!r}")
        self.id = repo
        self.repo = repo
        self.org = repo.split("/")[0]
        self.specs = list(revisions)
        self._tokens_per_step = tokens_per_step

    @property
    def models(self) -> list[str]:
        return [self.repo.split("/")[-1]]

    def resolve_model(self, model: str) -> str:
        return self.models[0] if model == self.repo else super().resolve_model(model)

    @cached_property
    def _table(self) -> tuple[dict[int, tuple[str, int | None]], str, bool]:
        """``({step: (revision, tokens the name states)}, where the steps come from, whether that is
        the order given)``."""
        names: list[tuple[str, int | None]] = []  # (revision, step given with =)
        for spec in self.specs:
            name, _, given = spec.partition("=")
            if given and not given.isdigit():
                raise SuiteError(f"revision {spec!r}: the step after '=' must be a whole number (main=143000)")
            if any(c in name for c in "*?["):
                if given:
                    raise SuiteError(f"revision {spec!r}: a pattern cannot take a step; give NAME=STEP per revision")
                branches = branch_names(self.repo, wanted=lambda n, pat=name: fnmatch.fnmatchcase(n, pat))
                hits = sorted(n for n in branches if fnmatch.fnmatchcase(n, name))
                if not hits:
                    raise SuiteError(f"no branch of {self.repo} matches {name!r} ({len(branches)} branches known)")
                stepless = [n for n in hits if step_of(n) is None]
                if stepless:
                    raise SuiteError(f"branches of {self.repo} matching {name!r} carry no step: "
                                     f"{', '.join(stepless[:5])}; use a narrower pattern or list them as NAME=STEP")
                names += [(n, None) for n in hits]
            else:
                names.append((name, int(given) if given else None))
        named = {n: (g if g is not None else step_of(n)[0] if step_of(n) else None) for n, g in names}
        if len(named) < len(names):
            raise SuiteError(f"a revision of {self.repo} is named twice in {self.specs}; name each once")
        without = [n for n, st in named.items() if st is None]
        if without and len(without) < len(named):
            one = len(without) == 1
            it = "it" if one else "them"
            raise SuiteError(f"revision{'' if one else 's'} {', '.join(without)} of {self.repo} "
                             f"carr{'ies' if one else 'y'} no step while the others do; give {'it' if one else 'each'} "
                             f"as NAME=STEP (e.g. {without[0]}=143000), or leave {it} out")
        if without:
            named = {n: i for i, n in enumerate(named)}
            source = "the order given (the revision names carry no step)"
        else:
            source = "the revision names" + (" and NAME=STEP" if any(g is not None for _, g in names) else "")
        table: dict[int, tuple[str, int | None]] = {}
        for n, st in named.items():
            if st in table:
                raise SuiteError(f"revisions {table[st][0]} and {n} of {self.repo} are both step {st}; keep one")
            parsed = step_of(n)
            table[st] = (n, parsed[1] if parsed else None)
        return dict(sorted(table.items())), source, bool(without)

    def revision(self, step: int) -> str:
        """The revision name of ``step``."""
        self.check_step(self.models[0], int(step))
        return self._table[0][int(step)][0]

    def steps(self, model: str) -> list[int]:
        self.resolve_model(model)
        return list(self._table[0])

    def _tokens_plan(self) -> tuple[str, bool]:
        """``(tokens_seen source in words, whether it is known)``."""
        table, step_source, ordinal = self._table
        if self._tokens_per_step is not None:
            return f"step x {self._tokens_per_step:,} tokens (--tokens-per-step; steps from {step_source})", True
        if all(t is not None for _, t in table.values()):
            return "from the revision names (-tokens<M>B)", True
        if len(table) == 1 and ordinal:
            return "0 by convention: one revision whose name carries no step, so its step is 0", True
        return "unknown: pass --tokens-per-step N", False

    def tokens_seen(self, model: str, step: int) -> int:
        self.check_step(self.resolve_model(model), int(step))
        source, known = self._tokens_plan()
        if not known:
            raise ValueError(f"tokens seen by {self.repo} at step {step} are unknown (the revision names state no "
                             "tokens); pass --tokens-per-step N (get_suite(repo, tokens_per_step=N, revisions=...))")
        if self._tokens_per_step is not None:
            return int(step) * self._tokens_per_step
        return self._table[0][int(step)][1] or 0

    def tokens_source(self, model: str) -> str:
        self.resolve_model(model)
        return self._tokens_plan()[0]

    def describe(self) -> list[str]:
        lines = super().describe()
        table, source, _ = self._table
        revs = ", ".join(f"{st}={name}" for st, (name, _) in list(table.items())[:8])
        more = f", ... ({len(table)} in all)" if len(table) > 8 else ""
        return [*lines, f"  steps from {source}: {revs}{more}"]

    def hub_ref(self, model: str, step: int) -> tuple[str, str]:
        """``(repo_id, revision)`` of a checkpoint."""
        self.resolve_model(model)
        return self.repo, self.revision(step)


def _size(model: str) -> str:
    m = re.search(r"(\d+(?:\.\d+)?[bBmM])(?:-|$)", model)
    return m.group(1).lower() if m else model.lower()


#: OLMo 1 with transformers-native ("-hf") weights and intermediate branches (OLMo 1.7 is 7B-0424).
OLMO_REPOS = {"OLMo-1B-hf": "allenai/OLMo-1B-hf", "OLMo-7B-0424-hf": "allenai/OLMo-7B-0424-hf"}
#: OLMo 2, stage-1 pre-training branches.
OLMO2_REPOS = {"OLMo-2-0425-1B": "allenai/OLMo-2-0425-1B", "OLMo-2-1124-7B": "allenai/OLMo-2-1124-7B",
               "OLMo-2-1124-13B": "allenai/OLMo-2-1124-13B"}
