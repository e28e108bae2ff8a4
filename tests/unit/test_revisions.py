"""OLMo-style suites: branch names parsed into steps, the branch list kept for offline use, and a
checkpoint loaded by branch from a local Hugging Face cache with ``HF_HUB_OFFLINE=1``."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from lhp_core import revisions
from lhp_core.revisions import HubRevisionsSuite, Revision, RevisionSuite, parse_revision, step_of
from lhp_core.suites import SuiteError, get_suite
from tests.hub_cache import fake_hub_snapshot

OLMO1 = ["main", "step0-tokens0B", "step1000-tokens4B", "step20000-tokens84B", "step738020-tokens3095B"]
OLMO2 = ["main", "stage1-step0-tokens0B", "stage1-step1000-tokens3B", "stage1-step140000-tokens294B",
         "stage2-ingredient1-step11000-tokens47B", "stage2-ingredient2-step11931-tokens50B"]


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LHP_CACHE", str(tmp_path / "lhp"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


def _keep(repo: str, names: list[str]) -> None:
    path = revisions.refs_file(repo)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(names))


def test_parse_revision():
    assert parse_revision("step20000-tokens84B") == Revision("step20000-tokens84B", 20000, 84 * 10**9)
    assert parse_revision("stage1-step140000-tokens294B") == Revision("stage1-step140000-tokens294B", 140000,
                                                                      294 * 10**9, stage=1)
    r = parse_revision("stage2-ingredient3-step12000-tokens26B")
    assert (r.stage, r.ingredient, r.step, r.tokens) == (2, 3, 12000, 26 * 10**9)
    for name in ("main", "step1000", "pr/3", "step1000-tokens4", "v1.0-step10-tokens1B"):
        assert parse_revision(name) is None, name


def test_olmo_suite_from_a_kept_branch_list(cache):
    _keep("allenai/OLMo-1B-hf", OLMO1)
    s = get_suite("olmo")
    assert s.kind == "hub" and s.models == ["OLMo-1B-hf", "OLMo-7B-0424-hf"]
    assert s.resolve_model("1b") == s.resolve_model("allenai/OLMo-1B-hf") == "OLMo-1B-hf"
    assert s.resolve_model("7B") == "OLMo-7B-0424-hf"
    assert s.steps("1b") == [0, 1000, 20000, 738020]
    assert s.tokens_seen("1b", 20000) == 84 * 10**9
    assert s.hub_ref("1b", 20000) == ("allenai/OLMo-1B-hf", "step20000-tokens84B")
    with pytest.raises(SuiteError,
                       match=r"no checkpoint at step 1500; nearest saved steps: \[0, 1000, 20000, 738020\]"):
        s.hub_ref("1b", 1500)
    with pytest.raises(SuiteError, match="valid models: OLMo-1B-hf, OLMo-7B-0424-hf"):
        s.steps("3b")


def test_olmo2_steps_are_stage_one_only(cache):
    _keep("allenai/OLMo-2-0425-1B", OLMO2)
    s = get_suite("olmo2")
    assert s.steps("1b") == [0, 1000, 140000]  # mid-training soups restart their steps: not on this axis
    assert s.hub_ref("1b", 1000) == ("allenai/OLMo-2-0425-1B", "stage1-step1000-tokens3B")


def test_two_branches_for_one_step_is_an_error(cache):
    _keep("allenai/OLMo-1B-hf", ["step1000-tokens4B", "step1000-tokens5B"])
    with pytest.raises(SuiteError, match="two branches for step 1000"):
        get_suite("olmo").steps("1b")


def test_branch_list_is_fetched_once_then_kept(cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    calls = []

    def refs(repo):
        calls.append(repo)
        return SimpleNamespace(branches=[SimpleNamespace(name=n) for n in OLMO1])

    monkeypatch.setattr(revisions, "list_repo_refs", refs)
    assert RevisionSuite("x", {"OLMo-1B-hf": "allenai/OLMo-1B-hf"}).steps("1b") == [0, 1000, 20000, 738020]
    assert calls == ["allenai/OLMo-1B-hf"]
    assert revisions.refs_file("allenai/OLMo-1B-hf").read_text().split() == sorted(OLMO1)

    def no_network(repo):
        raise AssertionError("the kept list must be used")

    monkeypatch.setattr(revisions, "list_repo_refs", no_network)
    assert RevisionSuite("x", {"OLMo-1B-hf": "allenai/OLMo-1B-hf"}).steps("1b")[-1] == 738020


def test_offline_without_a_list_names_the_fix(cache):
    with pytest.raises(SuiteError, match=r"HF_HUB_OFFLINE is set, .* no list is kept at .*allenai--OLMo-1B-hf\.txt"):
        get_suite("olmo").steps("1b")


def test_offline_uses_revisions_in_the_hf_cache(cache):
    refs = cache / "hf" / "models--allenai--OLMo-1B-hf" / "refs"
    refs.mkdir(parents=True)
    for name in ("main", "step1000-tokens4B", "step2000-tokens8B"):
        (refs / name).write_text("0" * 40)
    assert get_suite("olmo").steps("1b") == [1000, 2000]


def test_load_by_branch_from_a_local_hf_cache(tiny_suite: Path, tmp_path: Path) -> None:
    """``load("olmo", "1b", 1000)`` is ``from_pretrained("allenai/OLMo-1B-hf", revision="step1000-tokens4B")``,
    here served by an offline HF cache holding a tiny checkpoint under that branch."""
    hub = tmp_path / "hf"
    fake_hub_snapshot(hub, "allenai/OLMo-1B-hf", "step1000-tokens4B", tiny_suite / "s" / "step8",
                      "89abcdef0123456789abcdef0123456789abcdef")
    code = textwrap.dedent(
        f"""
        import torch
        from transformers import AutoModelForCausalLM
        from lhp_core.checkpoints import checkpoint_sha256, load
        from lhp_core.weights import weights_sha256
        from lhp_core.suites import get_suite
        s = get_suite("olmo")
        assert s.steps("1b") == [1000] and s.tokens_seen("1b", 1000) == 4 * 10**9
        lm, tok = load("olmo", "1b", 1000)
        ref = AutoModelForCausalLM.from_pretrained({str(tiny_suite / "s" / "step8")!r})
        ids = torch.tensor([tok("the people of the united states").input_ids])
        with torch.no_grad():
            assert torch.equal(lm(ids).logits, ref(ids).logits)
        assert checkpoint_sha256("olmo", "1b", 1000) == weights_sha256({str(tiny_suite / "s" / "step8")!r})
        print("OLMO-HUB-OK")
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub), "HF_HOME": str(tmp_path / "home"),
           "LHP_CACHE": str(tmp_path / "lhp")}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "OLMO-HUB-OK" in r.stdout


# ---- any hub repo at the revisions a user names ----------------------------------------------
def test_step_of_revision_names():
    assert step_of("step1000") == (1000, None)
    assert step_of("step1000-tokens4B") == (1000, 4 * 10**9)
    assert step_of("stage1-step140000-tokens294B") == (140000, 294 * 10**9)
    for name in ("step_20", "step-20", "global_step20", "checkpoint-20"):
        assert step_of(name) == (20, None), name
    assert step_of("step5-tokens300M") == (5, 300 * 10**6)
    for name in ("main", "v1.0", "step", "final-step10", "step10-tokens4", "checkpoint10"):
        assert step_of(name) is None, name


def test_revisions_named_in_the_order_of_their_steps(cache):
    s = get_suite("someone/tiny-lm", revisions=["step2000-tokens8B", "step1000-tokens4B"])
    assert isinstance(s, HubRevisionsSuite) and s.kind == "hub" and s.models == ["tiny-lm"]
    assert s.resolve_model("someone/tiny-lm") == "tiny-lm"
    assert s.steps("tiny-lm") == [1000, 2000] and s.tokens_seen("tiny-lm", 2000) == 8 * 10**9
    assert s.hub_ref("tiny-lm", 1000) == ("someone/tiny-lm", "step1000-tokens4B")
    assert s.tokens_source("tiny-lm") == "from the revision names (-tokens<M>B)"
    # names without tokens: --tokens-per-step, which also wins over the names'
    s = get_suite("someone/tiny-lm", revisions=["step10", "step20"])
    assert s.tokens_source("tiny-lm") == "unknown: pass --tokens-per-step N"
    with pytest.raises(ValueError, match=r"pass --tokens-per-step N"):
        s.tokens_seen("tiny-lm", 10)
    s = get_suite("someone/tiny-lm", revisions=["step10", "step20-tokens1B"], tokens_per_step=100)
    assert s.tokens_seen("tiny-lm", 20) == 2000


def test_revision_steps_given_order_given_or_refused(cache):
    s = get_suite("someone/tiny-lm", revisions=["main=143000", "step1000"], tokens_per_step=10)
    assert s.steps("someone/tiny-lm") == [1000, 143000] and s.hub_ref("tiny-lm", 143000)[1] == "main"
    assert "steps from the revision names and NAME=STEP" in s.tokens_source("tiny-lm")
    s = get_suite("someone/tiny-lm", revisions=["v2", "v1", "v3"], tokens_per_step=10)
    assert s.steps("tiny-lm") == [0, 1, 2] and s.revision(0) == "v2" and s.tokens_seen("tiny-lm", 2) == 20
    assert s.describe()[-1] == "  steps from the order given (the revision names carry no step): 0=v2, 1=v1, 2=v3"
    one = get_suite("someone/tiny-lm", revisions=["main"])
    assert one.steps("tiny-lm") == [0] and one.tokens_seen("tiny-lm", 0) == 0
    assert one.tokens_source("tiny-lm").startswith("0 by convention")
    with pytest.raises(ValueError, match="pass --tokens-per-step N"):
        get_suite("someone/tiny-lm", revisions=["v1", "v2"]).tokens_seen("tiny-lm", 1)
    bad = {
        ("main", "step1000"): r"revision main of someone/tiny-lm carries no step while the others do; give it as "
                              r"NAME=STEP \(e.g. main=143000\)",
        ("step1000", "checkpoint-1000"): "revisions step1000 and checkpoint-1000 of someone/tiny-lm are both step 1000",
        ("step1000", "step1000"): "named twice",
        ("main=latest",): "must be a whole number",
    }
    for revs, msg in bad.items():
        with pytest.raises(SuiteError, match=msg):
            get_suite("someone/tiny-lm", revisions=list(revs)).steps("tiny-lm")
    with pytest.raises(SuiteError, match="must be a list"):
        get_suite("someone/tiny-lm", revisions="step*")


def test_revision_patterns_over_the_branches(cache):
    refs = cache / "hf" / "models--someone--tiny-lm" / "refs"
    refs.mkdir(parents=True)
    for name in ("main", "step8", "step16", "step24", "checkpoint-4"):
        (refs / name).write_text("0" * 40)
    s = get_suite("someone/tiny-lm", revisions=["step*"], tokens_per_step=512)
    assert s.steps("tiny-lm") == [8, 16, 24] and s.hub_ref("tiny-lm", 16) == ("someone/tiny-lm", "step16")
    s = get_suite("someone/tiny-lm", revisions=["checkpoint-*", "step2?", "main=100"], tokens_per_step=1)
    assert s.steps("tiny-lm") == [4, 24, 100]
    with pytest.raises(SuiteError, match=r"matching 'ma\*' carry no step: main"):
        get_suite("someone/tiny-lm", revisions=["ma*"]).steps("tiny-lm")
    with pytest.raises(SuiteError, match="are unknown: HF_HUB_OFFLINE is set, the local HF cache holds none of them"):
        get_suite("someone/tiny-lm", revisions=["v*"]).steps("tiny-lm")  # the cache holds some branches only
    with pytest.raises(SuiteError, match="a pattern cannot take a step"):
        get_suite("someone/tiny-lm", revisions=["step*=3"]).steps("tiny-lm")
    # a kept branch list (written by an online run, or by hand) is used before the cache
    _keep("someone/tiny-lm", ["step100", "step200", "main"])
    assert get_suite("someone/tiny-lm", revisions=["step*"], tokens_per_step=1).steps("tiny-lm") == [100, 200]
    with pytest.raises(SuiteError, match=r"no branch of someone/tiny-lm matches 'v\*' \(3 branches known\)"):
        get_suite("someone/tiny-lm", revisions=["v*"]).steps("tiny-lm")


def test_revision_pattern_offline_without_branches_names_the_fix(cache):
    with pytest.raises(SuiteError, match=r"branches of someone/none are unknown: HF_HUB_OFFLINE is set"):
        get_suite("someone/none", revisions=["step*"]).steps("none")
