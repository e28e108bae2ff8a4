"""Token log-probabilities from a language model's logits: the one scorer of the library.

The sweep (:mod:`lhp_core.extract`), reading-time surprisal (:func:`lhp_core.metrics.reading.token_scores`),
the ICL losses (:func:`lhp_core.metrics.heads.position_losses`) and the task battery
(:class:`lhp_core.metrics.tasks.HFScorer`) all take ``log p(token | prefix)`` from here, so a change
of precision or formula reaches every measure at once.
"""
from __future__ import annotations

import torch


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor,
                   bow: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``log p(target)`` under each row of ``logits``, and the log-probability mass of a set of tokens.

    Computed as ``logit[target] - logsumexp(logits)``: a reduction over the vocabulary, without
    writing out a ``[..., vocab]`` log-softmax. float64 logits stay float64; others are scored in
    float32.

    Parameters
    ----------
    logits
        ``[..., vocab]`` next-token logits.
    targets
        ``[...]`` token ids (long), one per row of ``logits``, on its device.
    bow
        Optional ``[n]`` token ids (e.g. the word-initial tokens of the word-boundary correction).

    Returns
    -------
    logprob
        ``[...]`` natural-log probability of each target.
    mass
        ``[...]`` ``log sum_{t in bow} p(t)`` per row, or None without ``bow``.
    """
    logits = logits if logits.dtype == torch.float64 else logits.float()
    lse = torch.logsumexp(logits, dim=-1)
    logprob = logits.gather(-1, targets[..., None])[..., 0] - lse
    mass = None if bow is None else torch.logsumexp(logits.index_select(-1, bow), dim=-1) - lse
    return logprob, mass
