"""Instruction following: hand-built models with known answers, and greedy decoding vs HF generate."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from lhp_core import tokenizer as tok
from lhp_core.metrics import instruct

TEXT = ["the dog and the cat saw a house near the water yes no true false answer pick"] * 50


@pytest.fixture(scope="module")
def tokenizer():
    return tok.train_bpe(TEXT, vocab_size=300, min_frequency=1)


class Always(torch.nn.Module):
    """Predicts one fixed token id after any prefix."""

    def __init__(self, token_id: int, vocab: int) -> None:
        super().__init__()
        self.token_id, self.vocab = token_id, vocab
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids: torch.Tensor):
        logits = torch.zeros(*input_ids.shape, self.vocab)
        logits[..., self.token_id] = 1.0
        return SimpleNamespace(logits=logits)


def test_fixed_answer_model_follows_exactly_the_templates_that_allow_it(tokenizer) -> None:
    vocab = instruct.corpus_vocabulary(TEXT, n_words=10)
    prompts = instruct.build_prompts(vocab, n_per_template=5, seed=0)
    yes_id = tokenizer(" yes", add_special_tokens=False)["input_ids"]
    assert len(yes_id) == 1  # " yes" is one token in this vocabulary
    res = instruct.instruction_following(Always(yes_id[0], len(tokenizer)), tokenizer, prompts)
    # Two of the four templates allow "yes": the share is 10/20 exactly.
    assert res.follows.mean() == 0.5
    assert set(res.loc[res.follows, "template"]) == {"yes_no", "yes_no_q"}
    assert (res.answer == "yes").all()


def test_greedy_equals_hf_generate_on_a_random_gpt_neox(tokenizer) -> None:
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    cfg = GPTNeoXConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id)
    model = GPTNeoXForCausalLM(cfg).eval()
    prompts = instruct.build_prompts(instruct.corpus_vocabulary(TEXT), n_per_template=2, seed=1)["prompt"].tolist()
    ours = instruct.greedy_continuations(model, tokenizer, prompts, max_new_tokens=3, batch_size=4)
    for p, o in zip(prompts, ours):
        ids = torch.tensor([[tokenizer.bos_token_id] + tokenizer(p, add_special_tokens=False)["input_ids"]])
        ref = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False,
                             min_new_tokens=3, pad_token_id=tokenizer.pad_token_id)
        assert o == tokenizer.decode(ref[0, ids.shape[1]:].tolist())


def test_first_word_and_scoring() -> None:
    assert instruct.first_word(" Yes, it is") == "yes"
    assert instruct.first_word("\n(B) house") == "b"
    assert instruct.first_word(" 42 ...") == ""
    np.testing.assert_array_equal(instruct.score_answers([" no", " maybe", " A"], ["yes|no", "yes|no", "a|b"]),
                                  [True, False, True])


def test_prompts_are_deterministic_and_errors_are_clear() -> None:
    v = ["house", "water", "tree", "stone"]
    a, b = instruct.build_prompts(v, 4, seed=3), instruct.build_prompts(v, 4, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 4 * len(instruct.TEMPLATES)
    assert instruct.corpus_vocabulary(["b a b c c c Dd"], min_len=1) == ["c", "b", "a"]
    with pytest.raises(ValueError, match="at least 2"):
        instruct.build_prompts(["one"])
    with pytest.raises(KeyError, match="build_prompts"):
        instruct.instruction_following(None, None, pd.DataFrame({"x": [1]}))
