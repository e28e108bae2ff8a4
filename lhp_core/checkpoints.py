"""Load any suite's checkpoint by step, and hash checkpoint weights.

``load(suite, model, step)`` goes through ``from_pretrained`` for every kind of suite: a local
folder for ``lhp-*`` suites and folders, the hub (``revision="step<N>"`` for Pythia, a named
branch for OLMo; honouring ``HF_HUB_OFFLINE`` and ``HF_HUB_CACHE``). The tokenizer of every
checkpoint of a suite (of a model, where sizes ship their own) must be the same (compared by
:func:`lhp_core.tokenizer.tokenizer_fingerprint`, special tokens included).

Weights load from safetensors only: a pickled ``pytorch_model.bin`` can run code when it is
unpickled, so a hub revision that ships only pickles is refused with an error saying so.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from lhp_core.suites import HubSuite, LocalSuite, Suite, get_suite
from lhp_core.tokenizer import (
    FINGERPRINT_VERSION,
    fingerprint_matches,
    tokenizer_fingerprint,
)
from lhp_core.weights import (
    RESTORE,
    CorruptCheckpoint,
    check_safetensors,
    weights_sha256,
)

#: The dtypes a checkpoint is loaded in (``load(dtype=...)``), by the name a sweep or a measure takes.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# suite id -> (fingerprint, where it was first seen); one tokenizer per suite
_FINGERPRINTS: dict[str, tuple[str, str]] = {}


class TokenizerMismatch(ValueError):
    """A checkpoint's tokenizer differs from the rest of its suite."""


def checkpoint_sha256(suite: str | Path | Suite, model: str, step: int) -> str | None:
    """:func:`weights_sha256` of a checkpoint's files on disk, whatever dtype it is later loaded in.

    The files are a local suite's step folder, or a hub revision's snapshot already in the HF
    cache (nothing is downloaded). None when no ``*.safetensors`` file is there (hub revisions
    saved only as ``pytorch_model.bin``, or not downloaded yet).
    """
    s = get_suite(suite)
    model_id = s.resolve_model(model)
    if isinstance(s, HubSuite):
        from huggingface_hub import snapshot_download

        repo, rev = s.hub_ref(model_id, int(step))
        try:
            path = Path(snapshot_download(repo, revision=rev, allow_patterns=["*.safetensors"], local_files_only=True))
        except Exception:  # noqa: BLE001 - huggingface_hub raises several types for "not in the cache"
            return None
    elif isinstance(s, LocalSuite):
        path = s.checkpoint_path(model_id, int(step))
    else:
        return None
    return weights_sha256(path) if any(path.glob("*.safetensors")) else None


_ID_MEMO: dict[tuple, str] = {}


def checkpoint_id(suite: str | Path | Suite, model: str, step: int) -> str:
    """A string naming a checkpoint's exact weights, known before it is loaded (a cache key).

    * lhp suites: the tensor sha256 (:func:`lhp_core.weights.weights_sha256`) their training record
      lists for the step;
    * other local folders: the same hash of the files (kept per process while the files' sizes
      and modification times stay the same);
    * hub suites: ``"hub:<repo>@<revision>"`` (a published revision is not rewritten).

    Results cached under this id are never read for other weights: a retrained suite gets new ids.
    """
    s = get_suite(suite)
    model_id = s.resolve_model(model)
    step = int(step)
    if isinstance(s, HubSuite):
        repo, rev = s.hub_ref(model_id, step)
        return f"hub:{repo}@{rev}"
    if isinstance(s, LocalSuite):
        rec = s._record
        if rec is not None and model_id in rec["model"].values and step in rec["step"].values:
            return str(rec["weights_sha256"].sel(model=model_id, step=step).item())
        path = s.checkpoint_path(model_id, step)
        files = sorted(path.glob("*.safetensors"))
        key = (str(path), tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files))
        if key not in _ID_MEMO:
            _ID_MEMO[key] = weights_sha256(path)
        return _ID_MEMO[key]
    raise TypeError(f"checkpoint_id needs a lhp Suite, got {type(s).__name__}")


def record_sha256(suite: Suite, model: str, step: int) -> str | None:
    """The weights hash ``training_record.nc`` lists for a checkpoint of a local suite, else None."""
    rec = suite._record if isinstance(suite, LocalSuite) else None
    if rec is None or model not in rec["model"].values or int(step) not in rec["step"].values:
        return None
    return str(rec["weights_sha256"].sel(model=model, step=int(step)).item()) or None


def verified_sha256(suite: str | Path | Suite, model: str, step: int) -> str | None:
    """:func:`checkpoint_sha256`, checked against the suite's training record where it has one.

    Raises
    ------
    CorruptCheckpoint
        The files' weights differ from the hash recorded when the suite was trained (a flipped
        byte, a file copied over from another step); the message says how to restore them.
    """
    s = get_suite(suite)
    model_id = s.resolve_model(model)
    actual = checkpoint_sha256(s, model_id, step)
    listed = record_sha256(s, model_id, step)
    if actual is not None and listed is not None and actual != listed:
        raise CorruptCheckpoint(
            f"weights in {s.checkpoint_path(model_id, int(step))} have sha256 {actual[:16]}..., training_record.nc "
            f"lists {listed[:16]}...: the files changed after training; delete that step folder and "
            f"{s.restore_hint() if isinstance(s, LocalSuite) else RESTORE}"
        )
    return actual


def _mismatch(where: str, reference: str) -> TokenizerMismatch:
    return TokenizerMismatch(
        f"tokenizer of {where} differs from the suite's ({reference}) in its vocabulary, merges or special tokens "
        "(bos_token, eos_token, ...). All checkpoints of a suite must share one tokenizer; copy the suite's "
        "tokenizer files (tokenizer.json, tokenizer_config.json, special_tokens_map.json) into this checkpoint "
        "folder or rebuild the suite"
    )


def _check_tokenizer(suite: Suite, model: str, tokenizer, where: str) -> None:
    """Compare a checkpoint's tokenizer with the suite's training record and with the suite's other checkpoints.

    Records written by lhp before fingerprint version 2 hold a backend-only hash: for those
    suites the special tokens are compared with the suite's saved ``tokenizer/`` folder instead.
    """
    fp = tokenizer_fingerprint(tokenizer)
    key = suite.id if suite.kind == "hub" else str(getattr(suite, "root", suite.id))
    if not suite.shared_tokenizer:
        key = f"{key}:{model}"
    if isinstance(suite, LocalSuite) and suite._record is not None:
        listed = str(suite._record.attrs.get("tokenizer_fingerprint", ""))
        if listed and not fingerprint_matches(listed, tokenizer):
            raise _mismatch(where, f"{suite.root}/training_record.nc")
        saved = suite.root / "tokenizer"
        if listed and not listed.startswith(f"{FINGERPRINT_VERSION}:") and key not in _FINGERPRINTS \
                and (saved / "tokenizer.json").exists():
            from transformers import AutoTokenizer

            _FINGERPRINTS[key] = (tokenizer_fingerprint(AutoTokenizer.from_pretrained(saved)), str(saved))
    ref = _FINGERPRINTS.get(key)
    if ref is None:
        _FINGERPRINTS[key] = (fp, where)
    elif ref[0] != fp:
        raise _mismatch(where, ref[1])


def check_device(device: str | torch.device) -> None:
    """Raise ``RuntimeError`` unless torch can use ``device`` here (before any file is written).

    Without this a CUDA-less torch fails only at the first ``.to("cuda")``, with
    ``AssertionError: Torch not compiled with CUDA enabled``, after outputs were started.
    """
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r} ({e}); use cpu, cuda, cuda:N or mps") from None
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {str(device)!r} requested but torch {torch.__version__} has no usable CUDA "
                "(torch.cuda.is_available() is False); use --device cpu, or install a CUDA build of torch"
            )
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise RuntimeError(f"device {str(device)!r} requested but only {torch.cuda.device_count()} CUDA devices "
                               "are visible; use cuda:0 or check CUDA_VISIBLE_DEVICES")
    elif d.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"device {str(device)!r} requested but MPS is not available; use --device cpu")
    elif d.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {str(device)!r}; use cpu, cuda, cuda:N or mps")


@contextmanager
def _no_weights_bar():
    """Silence transformers' per-load "Loading weights" bar for one load.

    Sweeps show one bar over checkpoints; a bar per load is hundreds of lines in a terminal and
    hundreds of widget states saved in an executed notebook (megabytes per chapter).
    """
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def load(
    suite: str | Path | Suite,
    model: str,
    step: int,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    verify: bool = False,
):
    """Load one checkpoint and its tokenizer.

    Parameters
    ----------
    suite
        Suite id (``"pythia"``, ``"lhp-mini"``), folder path, or :class:`~lhp_core.suites.Suite`.
    model
        Model id within the suite (``"pythia-70m"`` or ``"70m"``; ``"s"``, ``"m"``, ``"l"`` for lhp suites).
    step
        A saved training step (see ``Suite.steps(model)``).
    device, dtype
        Where and in which precision to put the weights.
    verify
        Also hash the weights and compare with ``training_record.nc`` (local lhp suites).

    Returns
    -------
    (model, tokenizer)
        A ``transformers`` causal LM in eval mode and its ``PreTrainedTokenizerFast``.
    """
    s = get_suite(suite)
    model_id = s.resolve_model(model)
    step = int(step)
    s.check_step(model_id, step)
    if isinstance(s, HubSuite):
        repo, rev = s.hub_ref(model_id, step)
        with _no_weights_bar():
            try:
                lm = AutoModelForCausalLM.from_pretrained(repo, revision=rev, dtype=dtype, use_safetensors=True)
            except OSError as e:
                if "safetensors" not in str(e):
                    raise
                raise OSError(
                    f"{repo} revision {rev} has no *.safetensors weights here (only a pickled pytorch_model.bin, "
                    "or nothing in the cache); lhp loads safetensors only, because unpickling a .bin can run code: "
                    "choose a revision that has safetensors, or convert this one with safetensors' own tools"
                ) from None
        tok = AutoTokenizer.from_pretrained(repo, revision=rev)
        where = f"{repo}@{rev}"
    else:
        path = s.checkpoint_path(model_id, step)
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"no model.safetensors in {path}; the checkpoint folder is incomplete")
        for f in files:
            check_safetensors(f)
        if verify:
            verified_sha256(s, model_id, step)
        with _no_weights_bar():
            lm = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=True)
        tok = AutoTokenizer.from_pretrained(_tokenizer_dir(s, model_id, step, path))
        where = str(path)
    _check_tokenizer(s, model_id, tok, where)
    lm.to(device).eval()
    return lm, tok


def load_tokenizer(suite: str | Path | Suite, model: str, step: int):
    """The tokenizer of one checkpoint, without loading its weights (to build probes and windows)."""
    source, kwargs = _pretrained_source(suite, model, step, tokenizer=True)
    return AutoTokenizer.from_pretrained(source, **kwargs)


def load_config(suite: str | Path | Suite, model: str, step: int):
    """The model config of one checkpoint, without loading its weights."""
    source, kwargs = _pretrained_source(suite, model, step)
    return AutoConfig.from_pretrained(source, **kwargs)


def _pretrained_source(suite: str | Path | Suite, model: str, step: int,
                       tokenizer: bool = False) -> tuple[str | Path, dict[str, str]]:
    """What ``from_pretrained`` is given for one checkpoint: a hub repo and its revision, or a folder."""
    s = get_suite(suite)
    model_id, step = s.resolve_model(model), int(step)
    s.check_step(model_id, step)
    if isinstance(s, HubSuite):
        repo, rev = s.hub_ref(model_id, step)
        return repo, {"revision": rev}
    path = s.checkpoint_path(model_id, step)
    return (_tokenizer_dir(s, model_id, step, path) if tokenizer else path), {}


def _tokenizer_dir(s: Suite, model: str, step: int, path: Path) -> Path:
    """Where a checkpoint's tokenizer is: the suite says (local suites), else the checkpoint folder."""
    return s.tokenizer_dir(model, step) if isinstance(s, LocalSuite) else path
