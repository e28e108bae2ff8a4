"""Expert neurons and human conceptual structure (Fedzechkina et al. 2025).

Claim: units of a language model that act as classifiers of sentences about a concept (expert
neurons) carry a conceptual structure that agrees with human similarity judgements better than the
model's embeddings do, and that nests categories (the experts of *dog* lie within those of *animal*).

:func:`run` selects THINGS concepts with enough corpus sentences, builds positive and negative
sentences, scores every linear-layer unit's average precision per concept at every checkpoint, and
compares expert overlap with SPoSE similarity, feature norms and word-similarity ratings.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from lhp_core import concepts, schema
from lhp_core.data import feature_norms, things, word_similarity
from lhp_core.findings import Finding
from lhp_core.measures import shared_steps
from lhp_core.metrics import experts, similarity
from lhp_core.metrics.events import Curve, event_table
from lhp_core.studies.contributions import register
from lhp_core.suites import Suite
from lhp_core.train import ensure

SOURCE = "Fedzechkina et al. 2025"
#: The measure this study follows over training (name of its curve and of the events on it).
RSA = "expert RSA with SPoSE"


@dataclass
class Experts:
    """Everything the experts chapter shows; see :func:`run`."""

    suite: Suite
    models: list[str]
    steps: list[int]
    members: pd.DataFrame
    category_words: list[str]
    texts: pd.DataFrame
    table: pd.DataFrame
    held_out_share: float
    ap: xr.Dataset
    human: np.ndarray
    alignment: xr.Dataset
    spose_vs: dict[str, tuple[float, int]]
    top_k: int
    params: dict = field(default_factory=dict)

    @property
    def words(self) -> list[str]:
        return self.members["word"].tolist()

    @property
    def n_units(self) -> dict[str, int]:
        return {m: int(experts.model_ap(self.ap, m).sizes[schema.NEURON]) for m in self.models}

    @property
    def big(self) -> str:
        """The model with the most linear-layer units."""
        n = self.n_units
        return max(self.models, key=n.get)

    def members_table(self) -> pd.DataFrame:
        """The concepts of each THINGS category."""
        return self.members.groupby("category")["word"].apply(", ".join).reset_index(name="members")

    def per_step(self) -> pd.DataFrame:
        """The alignment measures per (model, step) with tokens seen, for tables and charts."""
        res = self.alignment
        per = res.drop_vars([v for v in res.data_vars if schema.STEP not in res[v].dims])
        return per.to_dataframe().reset_index().dropna(subset=["rsa_jaccard"])

    def final(self, model: str | None = None) -> pd.Series:
        t = self.per_step()
        return t[t.model == (model or self.big)].sort_values(schema.STEP).iloc[-1]

    def findings(self) -> list[Finding]:
        f = self.final()
        onset = float(self.alignment["onset_step"].sel(model=self.big))
        return [
            Finding("experts_track_humans", "expert-neuron overlap tracks human similarity, better than embeddings",
                    SOURCE,
                    f"Model {self.big}, step {int(f.step)}: Spearman {f.rsa_jaccard:.3f} "
                    f"[{f.ci_low:.3f}, {f.ci_high:.3f}] "
                    f"with SPoSE (null 95th percentile {f.null_q95:.3f}; input embeddings {f.rsa_embedding:.3f}); "
                    + (f"first above the null for good at step {onset:.0f}." if np.isfinite(onset)
                       else "never above the null for good."),
                    self.suite.id, alignment_verdict(f.ci_low, f.null_q95, f.rsa_jaccard, f.rsa_embedding)),
            Finding("experts_nest_categories", "a concept's experts lie within its category's experts", SOURCE,
                    f"Model {self.big}: {f.containment:.1%} of a member's experts are experts of its category "
                    f"(null 95th percentile {f.containment_null_q95:.1%}); clustering by expert overlap recovers the "
                    f"THINGS categories with ARI {f.ari:.2f} (null 95th percentile {f.ari_null_q95:.2f}).",
                    self.suite.id,
                    "holds" if f.containment > f.containment_null_q95 else "does not hold at this scale"),
        ]

    def curves(self) -> list[Curve]:
        """Expert-overlap RSA with SPoSE of every scored checkpoint (null: its permutation 95th percentile),
        for the Timeline."""
        return [Curve(RSA, "Spearman rho", self.alignment["rsa_jaccard"], null=float(self.alignment["null_q95"].max()),
                      description="Spearman correlation of expert-neuron overlap (Jaccard) with SPoSE similarity "
                                  "of the THINGS concepts")]

    def events(self) -> pd.DataFrame:
        """The onset of expert alignment with SPoSE per model, for the Timeline."""
        rows = []
        rec = self.suite.training_record()
        for m in self.models:
            on = self.alignment.sel(model=m)
            step, lo, hi = (float(on[k]) for k in ("onset_step", "onset_q05", "onset_q95"))
            found = bool(np.isfinite(step))
            last = self.suite.steps(m)[-1]
            rows.append({"study": "experts", "measure": RSA, "model": m,
                         "seed": int(rec.attrs.get("seed", 0)), "kind": "onset",
                         "step": step if found else np.nan,
                         "step_lo": min(lo, step) if found and np.isfinite(lo) else (step if found else np.nan),
                         "step_hi": max(hi, step) if found and np.isfinite(hi) else (step if found else np.nan),
                         "found": found, "tokens_per_step": self.suite.tokens_seen(m, last) / last})
        frame = pd.DataFrame(rows)
        return event_table(frame.drop(columns="tokens_per_step"), frame["tokens_per_step"].to_numpy())

    def numbers(self) -> dict:
        f = self.final()
        big = self.big
        onset = float(self.alignment["onset_step"].sel(model=big))
        out = dict(
            n_concepts=len(self.members), n_categories=len(self.category_words), n_sentences=len(self.texts),
            top_k=self.top_k, model=big, final_step=int(f.step), n_units_big=self.n_units[big],
            rsa_jaccard=float(f.rsa_jaccard), rsa_profile=float(f.rsa_profile), rsa_embedding=float(f.rsa_embedding),
            null_mean=float(f.null_mean), null_q95=float(f.null_q95), ci_low=float(f.ci_low), ci_high=float(f.ci_high),
            containment=float(f.containment), containment_null=float(f.containment_null), ari=float(f.ari),
            ari_null_q95=float(f.ari_null_q95),
            # No onset / too few SimLex pairs are recorded as flags, not NaN, so every number is finite.
            onset_found=bool(np.isfinite(onset)), onset_step=int(onset) if np.isfinite(onset) else -1,
            onset_found_share=float(self.alignment["onset_found_share"].sel(model=big)),
            max_ap=float(experts.model_ap(self.ap, big).max()), held_out_share=self.held_out_share,
            n_pairs_simlex999=int(f.n_pairs_simlex999),
        )
        for n in feature_norms.NORMS:
            out[f"n_pairs_{n}"] = int(f[f"n_pairs_{n}"])
            if np.isfinite(f[f"rsa_{n}"]):
                out[f"rsa_{n}"] = float(f[f"rsa_{n}"])
            if np.isfinite(self.spose_vs[n][0]):
                out[f"spose_vs_{n}"] = float(self.spose_vs[n][0])
        if np.isfinite(f.rsa_simlex999):
            out["rsa_simlex999"] = float(f.rsa_simlex999)
        for m in self.models:
            fm = self.final(m)
            out[f"rsa_final_{m}"] = float(fm.rsa_jaccard)
            out[f"rsa_embedding_final_{m}"] = float(fm.rsa_embedding)
        return out


def alignment_verdict(ci_low: float, null_q95: float, rsa_experts: float, rsa_embedding: float) -> str:
    """Holds when the expert RSA's lower bound clears the null and it beats the embedding baseline; above
    the null but not above the embeddings: contradicted (the claim is "better than embeddings"); not
    above the null: does not hold at this scale."""
    if not ci_low > null_q95:
        return "does not hold at this scale"
    return "holds" if rsa_experts > rsa_embedding else "contradicted"


def run(suite: str, models: Sequence[str] | None = None, steps: Sequence[int] | None = None, device: str = "cpu",
        max_steps: int = 12, n_categories: int = 4, per_category: int = 8, min_sentences: int = 10,
        n_corpus: int = 20, n_template: int = 10, n_negative_pool: int = 150, top_k: int = 50, n_perm: int = 200,
        n_boot: int = 200, seed: int = 0, progress: bool = True) -> Experts:
    """Run the experts study on ``suite`` (sizes as in the chapter's parameters)."""
    s = ensure(suite, device=device)
    models = list(models or s.models)
    pool = concepts.sentence_pool()
    index = concepts.WordIndex(pool["text"].tolist())
    members = concepts.select_concepts(concepts.eligible_concepts(things.concepts()), index, n_categories=n_categories,
                                       per_category=per_category, min_sentences=min_sentences)
    category_words = list(dict.fromkeys(members["category"]))
    texts, table = concepts.build_stimuli(members["word"].tolist() + category_words, pool, n_corpus=n_corpus,
                                          n_template=n_template, n_negative_pool=n_negative_pool, seed=seed,
                                          index=index)
    held = float(pool.set_index("text").loc[texts.loc[texts.source == "corpus", "text"], "split"].eq("held_out").mean())
    steps = shared_steps(s, models, steps, max_steps)
    ap = experts.expert_ap_over_steps(s, texts, table, models, steps, device=device, progress=progress)
    words = members["word"].tolist()
    human = concepts.spose_similarity(members["id"].tolist())
    emb = similarity.embedding_rsa_over_steps(s, words, human, models, steps, device=device, progress=progress)
    benchmarks = {name: word_similarity.load(name) for name in ("simlex999", "men")}
    norm_pairs = {n: feature_norms.pairs(n, members["id"].tolist(), words) for n in feature_norms.NORMS}
    benchmarks.update(norm_pairs)
    # Human against human on the same pairs: SPoSE (odd-one-out) against each feature norm.
    spose_vs = {n: similarity.pair_rsa(human, words, p) for n, p in norm_pairs.items()}
    res = similarity.alignment_over_training(ap, members[["word", "category"]], human, top_k=top_k,
                                             embedding_rsa=emb["rsa_embedding"], benchmarks=benchmarks, n_perm=n_perm,
                                             n_boot=n_boot, seed=seed)
    return Experts(s, models, steps, members, category_words, texts, table, held, ap, human, res, spose_vs, top_k,
                   params=dict(seed=seed, device=device))


register("experts", run)
