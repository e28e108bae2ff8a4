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
from lhp_core.revisions import Revision, RevisionSuite, parse_revision
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
    with pytest.raises(SuiteError, match=r"no checkpoint at step 1500; nearest saved steps: \[0, 1000, 20000, 738020\]"):
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
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    calls = []

    def refs(repo):
        calls.append(repo)
        return SimpleNamespace(branches=[SimpleNamespace(name=n) for n in OLMO1])

    monkeypatch.setattr(huggingface_hub, "list_repo_refs", refs)
    assert RevisionSuite("x", {"OLMo-1B-hf": "allenai/OLMo-1B-hf"}).steps("1b") == [0, 1000, 20000, 738020]
    assert calls == ["allenai/OLMo-1B-hf"]
    assert revisions.refs_file("allenai/OLMo-1B-hf").read_text().split() == sorted(OLMO1)

    def no_network(repo):
        raise AssertionError("the kept list must be used")

    monkeypatch.setattr(huggingface_hub, "list_repo_refs", no_network)
    assert RevisionSuite("x", {"OLMo-1B-hf": "allenai/OLMo-1B-hf"}).steps("1b")[-1] == 738020


def test_offline_without_a_list_names_the_fix(cache):
    with pytest.raises(SuiteError, match=r"HF_HUB_OFFLINE is set and no list is kept at .*allenai--OLMo-1B-hf\.txt"):
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
