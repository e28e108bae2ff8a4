#!/usr/bin/env bash
# Issue #2's GPU checks as one command for a lent H100/H200 (the device tool). Prepare here:
#   bash benchmarks/device/wheels.sh          # what the device image lacks, into .whl/ (~25 MB)
# then: run(command="bash benchmarks/device/check.sh", carry=[".whl"], timeout_s=560)
# Each stage tees into $OUT as it goes, so what finished comes back even if a later stage fails.
#   versions.txt, nvidia-smi.txt   the machine
#   pytest.log                     GPU-path tests (--device cuda): extraction and a sweep vs CPU float32
#   bench-410m.log / .json         benchmarks/sweep_bench.py on a pythia-410m-sized model, bf16
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-$PWD/device-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "check.sh: installing the carried wheels failed" >&2; exit 1; }
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python3 -c "import torch, transformers, zarr, xarray, dask; print('torch', torch.__version__, torch.cuda.get_device_name(0), \
'| transformers', transformers.__version__, '| zarr', zarr.__version__, '| xarray', xarray.__version__, '| dask', dask.__version__)" \
  2>&1 | tee "$OUT/versions.txt"

# ~1 min: the tests that take --device; CI runs the same checks on the CPU (bf16 there too).
timeout 180 python3 -m pytest -q -p no:cacheprovider --device cuda \
  "tests/unit/test_extract.py::test_device_extraction_matches_cpu" \
  "tests/integration/test_sweep.py::test_device_sweep_equals_cpu_store" \
  "tests/unit/test_brain.py::test_torch_path_equals_numpy" \
  "tests/unit/test_experts.py::test_ap_matches_sklearn_continuous" 2>&1 | tee "$OUT/pytest.log"
tests_rc=${PIPESTATUS[0]}

# ~3-4 min: 10,000 texts x 170 words (~2.5M tokens per checkpoint, ~250 per text: attention adds
# ~8 % to the 2 x params FLOPs, against ~33 % at 1,000 tokens), residual stream + MLP neurons pooled
# per text. The hand loop runs on the first checkpoint and 1,000 texts (rates are per token).
timeout 330 python3 benchmarks/sweep_bench.py --device cuda --config pythia-410m --texts 10000 --words 170 \
  --reducer stimulus_mean --batch-size 64 --steps 5 --hand-steps 1 --hand-texts 1000 --memory-steps 3 6 --threads 8 \
  --json "$OUT/bench-410m.json" 2>&1 | grep -v "Loading weights\|Writing model shards" | tee "$OUT/bench-410m.log"
bench_rc=${PIPESTATUS[0]}
echo "check.sh: tests exit $tests_rc, benchmark exit $bench_rc"
exit $(( tests_rc || bench_rc ))
