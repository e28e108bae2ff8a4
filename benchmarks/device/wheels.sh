#!/usr/bin/env bash
# Download, here, the wheels that the GPU check needs and the lent GPU machine's image lacks
# (it has torch, transformers, xarray, pandas, scipy, scikit-learn, pyarrow, ...; no registry).
# They land in .whl/ (in .gitignore), which the device tool carries: `carry: [".whl"]`.
# Versions are those the CPU CI resolves; Python 3.12, manylinux x86-64 as on the device image.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
WHEELS=(
  zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0
  dask==2026.8.0 distributed==2026.8.0 partd==1.4.2 locket==1.0.0 tblib==3.2.2 zict==3.0.0 tornado==6.6.1
  netCDF4==1.7.5.1.post1 cftime==1.6.6.1 platformdirs==4.14.9
)
PLATFORMS=()
for n in 17 24 27 28 31 34; do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" --platform manylinux2014_x86_64 --platform linux_x86_64 --platform any -d .whl "${WHEELS[@]}"
du -sh .whl
