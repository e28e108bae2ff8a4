"""The suite: what the checkpoints every other chapter reads are.

:func:`run` trains the suite if it is missing, reads its training record (losses against tokens
seen, parameter counts, the induction probe), and hashes every checkpoint to check that no two
steps hold identical weights and that no file changed after training.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from lhp_core import schema, suites
from lhp_core.findings import Finding
from lhp_core.metrics import changepoint
from lhp_core.metrics.events import Curve, event_table
from lhp_core.studies.contributions import register
from lhp_core.suites import Suite
from lhp_core.train import ensure

#: A second copy this much easier than the first (nats/token) is an induction signature, not noise.
MIN_REPEAT_GAP = 0.5
#: The measures this study follows over training (names of its curves and of the events on them).
HELD_OUT_LOSS = "held-out loss"
REPEAT_GAP = "repeated-sequence advantage"


@dataclass
class SuiteStudy:
    """The suite's record and checks; see :func:`run`."""

    suite: Suite
    record: xr.Dataset
    hashes: pd.DataFrame

    @property
    def duplicates(self) -> list:
        return suites.duplicate_groups(self.hashes)

    @property
    def repeat_gap(self) -> xr.DataArray:
        """First-copy minus second-copy loss on the repeated-sequence probe (nats/token)."""
        return self.record["probe_first_loss"] - self.record["probe_second_loss"]

    def losses(self) -> pd.DataFrame:
        df = self.record[["train_loss", "val_loss"]].to_dataframe().reset_index()
        df = df.melt(id_vars=[schema.MODEL, schema.STEP, schema.TOKENS_SEEN], value_vars=["train_loss", "val_loss"],
                     var_name="split", value_name="loss")
        return df.replace({"split": {"train_loss": "train", "val_loss": "held-out"}})

    def probe(self) -> pd.DataFrame:
        df = self.record[["probe_first_loss", "probe_second_loss"]].to_dataframe().reset_index()
        df = df.melt(id_vars=[schema.MODEL, schema.STEP, schema.TOKENS_SEEN],
                     value_vars=["probe_first_loss", "probe_second_loss"], var_name="copy", value_name="loss")
        return df.replace({"copy": {"probe_first_loss": "first copy", "probe_second_loss": "second copy"}})

    def params_table(self) -> pd.DataFrame:
        return pd.DataFrame({"model": self.record.model.values, "parameters": self.record.n_params.values,
                             "non-embedding": self.record.n_params_nonembedding.values})

    def hash_summary(self) -> pd.DataFrame:
        return self.hashes.groupby("model", sort=False).agg(
            checkpoints=("step", "size"), duplicates=("same_as_step", lambda s: int((s >= 0).sum())),
            changed_since_training=("record_mismatch", "sum")).reset_index()

    def findings(self) -> list[Finding]:
        last = self.record.isel(step=-1)
        gap = self.repeat_gap.isel(step=-1)
        big = str(self.record.n_params.idxmax().item())
        return [Finding(
            "repeat_induction_signature", "training builds induction: a repeated sequence's second copy becomes "
            "much easier than the first", "Olsson et al. 2022",
            f"Final checkpoints: second copy easier by {float(gap.min()):.2f}-{float(gap.max()):.2f} nats/token "
            f"(largest model {big}: {float(gap.sel(model=big)):.2f}; at initialisation "
            f"{float(self.repeat_gap.isel(step=0).max()):.2f}); held-out loss {float(last.val_loss.min()):.2f}-"
            f"{float(last.val_loss.max()):.2f} nats/token.", self.suite.id,
            "holds" if float(gap.sel(model=big)) >= MIN_REPEAT_GAP else "does not hold at this scale")]

    def curves(self) -> list[Curve]:
        """Held-out loss and the repeated-sequence advantage of every checkpoint, for the Timeline."""
        return [Curve(HELD_OUT_LOSS, "nats/token", self.record["val_loss"],
                      description="pre-training loss on the held-out split of the corpus"),
                Curve(REPEAT_GAP, "nats/token", self.repeat_gap, null=0.0,
                      description="first-copy minus second-copy loss on repeated random sequences")]

    def events(self) -> pd.DataFrame:
        """The step at which each model's repeated-sequence advantage jumps (level shift), for the Timeline."""
        rows = []
        for r in changepoint.per_model(self.repeat_gap, kind="mean", n_boot=500, min_jump=MIN_REPEAT_GAP).itertuples():
            last = self.suite.steps(r.model)[-1]
            rows.append({"study": "suite", "measure": REPEAT_GAP, "model": r.model,
                         "seed": int(self.record.attrs.get("seed", 0)), "kind": "transition",
                         "step": r.step if r.found else np.nan, "step_lo": r.lo if r.found else np.nan,
                         "step_hi": r.hi if r.found else np.nan, "found": bool(r.found),
                         "tokens_per_step": self.suite.tokens_seen(r.model, last) / last})
        frame = pd.DataFrame(rows)
        return event_table(frame.drop(columns="tokens_per_step"), frame["tokens_per_step"].to_numpy())

    def numbers(self) -> dict:
        rec = self.record
        last, first = rec.isel(step=-1), rec.isel(step=0)
        gap = self.repeat_gap
        return dict(
            suite=self.suite.id, n_models=int(rec.sizes["model"]), n_checkpoints=int(rec.sizes["step"]),
            last_step=int(rec.step[-1]), val_loss_first=float(first.val_loss.mean()),
            val_loss_last_min=float(last.val_loss.min()), val_loss_last_max=float(last.val_loss.max()),
            val_loss_last_largest=float(last.val_loss.sel(model=rec.n_params.idxmax())),
            val_loss_last_smallest=float(last.val_loss.sel(model=rec.n_params.idxmin())),
            train_loss_last_mean=float(last.train_loss.mean()), n_params_min=int(rec.n_params.min()),
            n_params_max=int(rec.n_params.max()), n_checkpoints_hashed=len(self.hashes),
            n_duplicate_groups=len(self.duplicates), n_record_mismatch=int(self.hashes.record_mismatch.sum()),
            repeat_gap_first=float(gap.isel(step=0).max()), repeat_gap_last_max=float(gap.isel(step=-1).max()),
            repeat_gap_last_min=float(gap.isel(step=-1).min()),
        )


def run(suite: str, models: Sequence[str] | None = None, steps: Sequence[int] | None = None,
        device: str = "cpu") -> SuiteStudy:
    s = ensure(suite, device=device)
    rec = s.training_record()
    rec = rec.sel(model=list(models or rec.model.values), step=list(steps or rec.step.values))
    hashes = suites.check(s, models=list(rec.model.values), progress=False)
    return SuiteStudy(s, rec, hashes[hashes.step.isin(rec.step.values)].reset_index(drop=True))


register("suite", run)
