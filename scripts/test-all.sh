#!/usr/bin/env bash
# The whole test suite, as the README gives it and .ci/run runs it:
# 1. the Rust workspace tests (engine, CLI);
# 2. the Python package: a virtual environment under target/py-venv (created once, reused),
#    its test requirements from PyPI, the package built from python/ with maturin and
#    installed, then its pytest suite (real Qiskit Aer, PennyLane and Cirq states).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the volume plugin's tests need (mkfs.ext4 for its disk tier, a Docker
# engine and busybox for the end-to-end tests), installed once when missing.
if ! command -v mkfs.ext4 >/dev/null || ! command -v dockerd >/dev/null || ! command -v busybox >/dev/null; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io e2fsprogs busybox-static >/dev/null
fi

cargo test --workspace

venv=target/py-venv
if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
export VIRTUAL_ENV="$PWD/$venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
python -m pip install -q --disable-pip-version-check -r python/requirements-test.txt
python -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps \
    --force-reinstall ./python
# The simulator tests drive the qstore binary that `cargo test` built.
export QSTORE_BIN="$PWD/target/debug/qstore"
python -m pytest -q python/tests

# The Docker volume plugin against a real Docker engine (installs and starts one if needed).
./scripts/test-docker.sh
