"""A sweep store explains itself: every array (variables and coordinates, every site, reducer and
head score the tiny suite can be swept with) has ``units`` and a one-line ``description``, they are
in the consolidated metadata, and ``open_results`` returns them."""
from __future__ import annotations

import json

import pytest
import torch
import zarr

from lhp_core import open_results
from lhp_core import store as St
from lhp_core.checkpoints import load_tokenizer
from lhp_core.metrics.heads import induction_probe
from lhp_core.reducers import HEAD_SCORES, REDUCERS
from lhp_core.sites import SITES
from lhp_core.sweep import sweep


@pytest.fixture(scope="module")
def full_store(tiny_suite, tmp_path_factory):
    torch.set_num_threads(1)
    stim, _ = induction_probe(load_tokenizer(tiny_suite, "m", 0), n_seq=2, seq_len=5)  # heads need repeats
    return sweep(str(tiny_suite), stim, tmp_path_factory.mktemp("attrs") / "r.zarr", sites=list(SITES),
                 reducers=REDUCERS.names(), head_scores=HEAD_SCORES.names(), models=["m"], steps=[0, 24],
                 progress=False)


def arrays(group: zarr.Group, path: str = ""):
    for name, a in group.arrays():
        yield f"{path}/{name}", a
    for name, sub in group.groups():
        yield from arrays(sub, f"{path}/{name}")


def test_every_array_has_units_and_a_one_line_description(full_store):
    found = dict(arrays(zarr.open_group(str(full_store), mode="r")))
    sites = {p.split("/")[2] for p in found if p.count("/") == 3}
    assert sites == set(SITES)
    for site, names in (("heads", HEAD_SCORES.names()), ("resid", REDUCERS.names())):
        assert {f"/m/{site}/{n}" for n in names} <= set(found)
    assert {"/m/complete", "/m/weights_sha256", "/m/n_tokens", "/m/tokens_seen", "/m/step"} <= set(found)
    for path, a in found.items():
        attrs = dict(a.attrs)
        assert attrs.get("units"), path
        desc = attrs.get("description", "")
        assert desc and "\n" not in desc and len(desc) < 300, (path, desc)
        assert attrs.get("long_name"), path
    for path in ("/m/tokens_seen", "/m/resid/tokens_seen"):
        assert dict(found[path].attrs)["source"].endswith("training_record.nc"), path


def test_attrs_are_consolidated_and_returned_by_open_results(full_store):
    assert St.is_consolidated(full_store)
    meta = json.loads((full_store / "zarr.json").read_text())["consolidated_metadata"]["metadata"]
    assert meta["m/logprobs_bow/word_sum"]["attributes"]["units"] == "nats"
    lp = open_results(full_store, "m", site="logprobs_bow")["word_sum"]
    assert lp.attrs["long_name"] == "word log-probability, word-boundary corrected (Pimentel & Meister 2024)"
    assert lp.attrs["units"] == "nats" and lp.attrs["description"].startswith("log p(word | context)")
    resid = open_results(full_store, "m", site="resid")
    assert resid["word_mean"].attrs["long_name"] == "mean residual-stream activation over the word's tokens"
    assert resid["word_mean"].attrs["units"] == "activation"
    assert resid["tokens_seen"].attrs["units"] == "tokens" and resid["step"].attrs["units"] == "steps"
    assert resid["complete"].attrs["units"] == "1" and resid["weights_sha256"].attrs["units"] == "n/a"
    heads = open_results(full_store, "m", site="heads")
    assert heads["entropy"].attrs["units"] == "nats" and heads["induction"].attrs["units"] == "1"
    tree = open_results(full_store)
    assert tree["m/logprobs"]["word_sum"].attrs["long_name"] == "word log-probability (subword sum)"
    assert tree["m"].attrs["tokens_seen_source"].endswith("training_record.nc")


def test_variable_attrs_of_every_site_and_reducer():
    for site in SITES:
        names = HEAD_SCORES.names() if site == "heads" else REDUCERS.names()
        for name in names:
            attrs = St.variable_attrs(site, name)
            assert set(attrs) == {"long_name", "units", "description"} and all(attrs.values()), (site, name)
    assert St.variable_attrs("logprobs", "stimulus_sum")["long_name"] == "stimulus log-probability (subword sum)"
    assert St.variable_attrs("mlp", "word_last")["long_name"] == "MLP neuron activation at the word's last token"
    assert St.variable_attrs("logprobs", "per_token")["long_name"] == "log-probability of each token"
    with pytest.raises(KeyError, match="valid"):
        St.variable_attrs("heads", "no_such_score")
