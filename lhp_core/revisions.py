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

import os
import re
from dataclasses import dataclass
from pathlib import Path

from lhp_core import config
from lhp_core.suites import SUITES, HubSuite, SuiteError

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
    from huggingface_hub import constants

    root = Path(os.environ.get("HF_HUB_CACHE", constants.HF_HUB_CACHE)) / f"models--{repo.replace('/', '--')}" / "refs"
    return sorted(p.name for p in root.iterdir() if p.is_file()) if root.is_dir() else []


def branch_names(repo: str, refresh: bool = False) -> list[str]:
    """Branch names of ``repo``: the kept list, else the hub (then kept), else the local HF cache."""
    path = refs_file(repo)
    if path.exists() and not refresh:
        return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if not offline:
        from huggingface_hub import list_repo_refs

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
    if not any(parse_revision(n) for n in names):
        raise SuiteError(
            f"the checkpoint branches of {repo} are unknown: {reason} and no list is kept at {path}. "
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

    def hub_ref(self, model: str, step: int) -> tuple[str, str]:
        """``(repo_id, branch)``, e.g. ``("allenai/OLMo-1B-hf", "step20000-tokens84B")``."""
        model = self.resolve_model(model)
        self.check_step(model, int(step))
        return self.repos[model], self.revisions(model)[int(step)].name


def _size(model: str) -> str:
    m = re.search(r"(\d+(?:\.\d+)?[bBmM])(?:-|$)", model)
    return m.group(1).lower() if m else model.lower()


#: OLMo 1 with transformers-native ("-hf") weights and intermediate branches (OLMo 1.7 is 7B-0424).
OLMO_REPOS = {"OLMo-1B-hf": "allenai/OLMo-1B-hf", "OLMo-7B-0424-hf": "allenai/OLMo-7B-0424-hf"}
#: OLMo 2, stage-1 pre-training branches.
OLMO2_REPOS = {"OLMo-2-0425-1B": "allenai/OLMo-2-0425-1B", "OLMo-2-1124-7B": "allenai/OLMo-2-1124-7B",
               "OLMo-2-1124-13B": "allenai/OLMo-2-1124-13B"}

SUITES.register("olmo", lambda: RevisionSuite("olmo", OLMO_REPOS))
SUITES.register("olmo2", lambda: RevisionSuite("olmo2", OLMO2_REPOS, stage=1))
