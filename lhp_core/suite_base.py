"""What every checkpoint suite is: :class:`Suite`, :class:`HubSuite` (checkpoints as hub revisions),
:class:`SuiteError`, parameter counting (:func:`count_params`) and the suite registries.

The kinds of suite build on this module (folders and Pythia in :mod:`lhp_core.suites`, named
branches in :mod:`lhp_core.revisions`); :mod:`lhp_core.suites` registers them and recognises a
suite from an id or a path (:func:`lhp_core.suites.get_suite`).
"""
from __future__ import annotations

import bisect
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import snapshot_download

from lhp_core.registry import Registry


class SuiteError(KeyError):
    """Unknown suite, model or step; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would repr() the message and hide its line breaks
        return str(self.args[0]) if self.args else ""


class Suite:
    """A family of models with checkpoints by step.

    Attributes
    ----------
    id
        Registry id (``"pythia"``, ``"lhp-mini"``) or the folder path of a local suite.
    models
        Model ids, smallest first where sizes are known.
    """

    id: str
    kind: str  # "hub" or "local"
    form: str = "suite"  # what was recognised, in words ("folder of step<N>/ checkpoints")
    #: Every model of the suite uses one tokenizer (Pythia, lhp suites); else it is checked per model.
    shared_tokenizer: bool = True

    @property
    def models(self) -> list[str]:
        raise NotImplementedError

    def steps(self, model: str) -> list[int]:
        raise NotImplementedError

    def tokens_seen(self, model: str, step: int) -> int:
        raise NotImplementedError

    def n_params(self, model: str, nonembedding: bool = False) -> int:
        raise NotImplementedError

    def training_record(self):
        raise NotImplementedError

    def checkpoint_path(self, model: str, step: int) -> Path:
        raise NotImplementedError

    def tokens_source(self, model: str) -> str:
        """Where :meth:`tokens_seen` comes from, in words (``lhp suite show``, the store's attrs)."""
        raise NotImplementedError

    def describe(self) -> list[str]:
        """What was recognised, one line each: the kind of suite, then per model its steps and
        where ``tokens_seen`` comes from (``lhp suite show`` prints these before anything loads)."""
        lines = [f"suite {self.id} ({self.form})"]
        for m in self.models:
            st = self.steps(m)
            span = f"{st[0]}..{st[-1]}" if len(st) > 1 else f"{st[0]}"
            lines.append(f"  {m}: {len(st)} step{'s' * (len(st) != 1)} {span}; tokens_seen: {self.tokens_source(m)}")
        return lines

    def resolve_model(self, model: str) -> str:
        """The canonical model id for ``model``; unknown ids raise :class:`SuiteError` listing valid ones."""
        if model in self.models:
            return model
        raise SuiteError(f"suite {self.id!r} has no model {model!r}; valid models: {', '.join(self.models)}")

    def check_step(self, model: str, step: int) -> None:
        """Raise :class:`SuiteError` naming the nearest saved steps if ``step`` was not saved."""
        steps = self.steps(model)
        if step not in steps:
            i = bisect.bisect_left(steps, step)
            near = steps[max(0, i - 2) : i + 2]
            raise SuiteError(
                f"suite {self.id!r} model {model!r} has no checkpoint at step {step}; nearest saved steps: {near} "
                f"({len(steps)} steps from {steps[0]} to {steps[-1]}; see Suite.steps(model))"
            )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id!r}: {len(self.models)} models>"


class HubSuite(Suite):
    """A suite on the Hugging Face hub: each checkpoint is a ``(repo, revision)`` pair.

    Subclasses say which (:meth:`hub_ref`); loading, the snapshot folder and the weights hash
    are the same for all. :class:`PythiaSuite` names revisions ``step<N>``; OLMo's named
    branches are in :mod:`lhp_core.revisions`.
    """

    kind = "hub"
    form = "Hugging Face hub models"
    org = ""  # shown by `lhp suite list`

    def hub_ref(self, model: str, step: int) -> tuple[str, str]:
        raise NotImplementedError

    def checkpoint_path(self, model: str, step: int) -> Path:
        """Local snapshot folder (downloaded into the HF cache unless ``HF_HUB_OFFLINE=1``)."""
        repo, rev = self.hub_ref(model, step)
        return Path(snapshot_download(repo, revision=rev, allow_patterns=["*.json", "*.safetensors", "*.txt"]))

    def n_params(self, model: str, nonembedding: bool = False) -> int:
        """Counted from the model's config at its first checkpoint (on the meta device: no weights)."""
        from transformers import AutoConfig  # transformers takes seconds to import; `lhp suite list` needs none

        repo, rev = self.hub_ref(model, self.steps(model)[0])
        return count_params(AutoConfig.from_pretrained(repo, revision=rev), nonembedding)

    def training_record(self):
        raise NotImplementedError(
            f"suite {self.id!r} has no training_record.nc (it was not trained by lhp); its held-out loss "
            "per checkpoint: lhp_core.metrics.loss.loss_over_steps(suite, held_out_texts)"
        )


def count_params(model, nonembedding: bool = False) -> int:
    """Parameters of a causal LM, given the model or its config (built on the meta device: no weights).

    Non-embedding leaves out the input embedding and an *untied* output embedding, as the Pythia
    paper counts; a tied output matrix is the input embedding and is counted once.
    """
    import torch  # torch is needed only here; `lhp suite list` stays light
    from transformers import AutoModelForCausalLM, PretrainedConfig  # as torch: seconds to import

    if isinstance(model, PretrainedConfig):
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(model)
    total = sum(p.numel() for p in model.parameters())
    emb_in = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    emb = emb_in.numel() + (out.weight.numel() if out is not None and out.weight is not emb_in else 0)
    return total - emb if nonembedding else total


#: Registered suites by id (``lhp_core.suites`` registers every one, after importing the kinds it needs).
SUITES: Registry[Suite] = Registry("suite")
#: Kinds of suite made from a hub repo and named revisions (``lhp_core.suites`` registers ``revisions``).
REPO_SUITES: Registry[Callable[..., Suite]] = Registry("hub repo suite kind")
