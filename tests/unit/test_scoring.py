"""The one token scorer against a hand computation: log_softmax of the logits, gathered at the targets."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lhp_core.scoring import token_logprobs


# float32 keeps ~7 digits of log-probabilities near -5 (N(0, 1) logits over 50 tokens): 1e-6; float64: 1e-12
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-6), (torch.float64, 1e-12), (torch.bfloat16, 1e-6)])
def test_token_logprobs_equal_log_softmax(dtype: torch.dtype, tol: float) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 50, generator=gen, dtype=torch.float64).to(dtype)  # [batch, seq, vocab]
    targets = torch.randint(0, 50, (3, 5), generator=gen)
    bow = torch.tensor([0, 7, 8, 31, 49])
    lp, mass = token_logprobs(logits, targets, bow)
    assert lp.shape == mass.shape == (3, 5)
    assert lp.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    # the reference: numpy in float64 on the same (rounded) logits
    x = logits.double().numpy()
    logp = x - x.max(-1, keepdims=True) - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True))
    ref_lp = np.take_along_axis(logp, targets.numpy()[..., None], -1)[..., 0]
    ref_mass = np.log(np.exp(logp[..., bow.numpy()]).sum(-1))
    np.testing.assert_allclose(lp.double().numpy(), ref_lp, rtol=0, atol=tol)
    np.testing.assert_allclose(mass.double().numpy(), ref_mass, rtol=0, atol=tol)
    assert token_logprobs(logits, targets)[1] is None
