#!/usr/bin/env bash
# Build, on the CPU machine, what a lent GPU machine needs and cannot fetch, so that a GPU
# session spends its few device minutes training, not setting up. Run once per machine
# (the results are git-ignored through .git/info/exclude and do not outlive the machine):
#   .whl/      the dependencies the device's image lacks (rosbags, mcap, mcap-ros2-support
#              and theirs, ~4 MB; the image has torch, numpy, OpenCV, PyYAML, tqdm,
#              safetensors, matplotlib; open3d is only imported by the ground helpers and is
#              too big to carry); drivingseg itself runs from the tree (PYTHONPATH);
#   .devdata/  camvid/ with the images as JPEG (QUALITY, default 90) beside the original
#              label PNGs (~30 MB), and with KITTI=1 also kitti_raw/ (72 MB: too much beside
#              CamVid, so only for a benchmark-only call). The tree, its weights included,
#              is ~25 MB, and at most 64 MiB travel.
# Then, with the device tool (carry [".whl", ".devdata"]):
#   python3 -m pip install -q --no-deps --no-index .whl/*.whl &&
#   DRIVINGSEG_DATA=$PWD/.devdata OUT=$OUT bash scripts/gpu_distill.sh
# (gpu_check.sh's benchmarks read kitti_raw/: run them with BENCH=1 only in a KITTI=1 call.)
# Score what comes back on the original PNGs here (scripts/gpu_check.sh says how).
# Usage (repository root): bash scripts/gpu_prepare.sh [DATA_DIR]   (default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-${DRIVINGSEG_DATA:-../shared/data}}
PY=${PYTHON:-.venv/bin/python}
DEVICE_PY=${DEVICE_PY:-3.12}
[ -d "$DATA/camvid" ] || { echo "no camvid/ in $DATA"; exit 2; }
mkdir -p .git/info
for p in /.whl/ /.devdata/; do
    grep -qxF "$p" .git/info/exclude 2> /dev/null || echo "$p" >> .git/info/exclude
done

rm -rf .whl && mkdir -p .whl
$PY -m pip download -q --no-deps --only-binary=:all: --python-version "$DEVICE_PY" \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 -d .whl \
    rosbags mcap mcap-ros2-support apsw backports.zstd lz4 zstandard ruamel.yaml \
    ruamel.yaml.clib 2>&1 |
    grep -v "is ignored: it is neither" || true

rm -rf .devdata && mkdir -p .devdata/camvid
[ "${KITTI:-0}" = 1 ] && cp -r "$DATA/kitti_raw" .devdata/
$PY - "$DATA/camvid" .devdata/camvid "${QUALITY:-90}" << 'EOF'
import shutil
import sys
from pathlib import Path

import cv2

src, dst, quality = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
for split in sorted(p for p in src.iterdir() if p.is_dir()):
    out = dst / split.name
    out.mkdir(parents=True)
    annot = split.name.endswith("annot")
    for f in sorted(split.glob("*.png")):
        if annot:
            shutil.copy(f, out / f.name)
        else:
            image = cv2.imread(str(f), cv2.IMREAD_COLOR)
            cv2.imwrite(str(out / (f.stem + ".jpg")), image, [cv2.IMWRITE_JPEG_QUALITY, quality])
EOF
du -sh .whl .devdata
echo "ready: carry [\".whl\", \".devdata\"]"
