#!/usr/bin/env bash
# Set up drivingseg on a fresh Debian/Ubuntu machine: system libraries that OpenCV and
# Open3D load, a virtual environment in .venv, the CPU build of torch, the package + dev tools.
set -euo pipefail
cd "$(dirname "$0")/.."

# Shared libraries behind `import cv2` (libGL, glib) and `import open3d` (libgomp, libusb, X11).
sys_pkgs=(libgl1 libglib2.0-0 libgomp1 libusb-1.0-0 libx11-6 libxext6 libxrender1 libsm6)
# Headless Chromium renders the HTML report in the browser test (skipped without it, except in CI).
test_pkgs=(chromium fonts-dejavu-core)
missing=()
for p in "${sys_pkgs[@]}" "${test_pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    for p in "${sys_pkgs[@]}"; do
      if [[ " ${missing[*]} " == *" $p "* ]]; then
        echo "setup: please install these system packages first: ${missing[*]}" >&2
        exit 1
      fi
    done
    echo "setup: optional for the browser test, not installed: ${missing[*]}" >&2
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# The CPU wheel first: a plain `torch` requirement would pull GBs of CUDA packages. The pin
# takes the CPU wheel where pip's find-links hold it (the project's machines); from public
# PyPI add --index-url https://download.pytorch.org/whl/cpu.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"
