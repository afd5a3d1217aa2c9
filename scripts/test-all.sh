#!/usr/bin/env bash
# The whole test suite, as the README gives it and .ci/run runs it:
# 0. the cluster services (scripts/cluster.sh): a 3-node Garage cluster (built once from
#    crates.io into ~/.cache/qstore, ~25 min on 2 cores) and a 3-member etcd cluster, plus a
#    moto S3 server (honours conditional writes), all on loopback, stopped on exit;
# 1. the Rust workspace tests (engine, CLI, cluster backends against those services);
# 2. the Python package: a virtual environment under target/py-venv (created once, reused),
#    its test requirements from PyPI, the package built from python/ with maturin and
#    installed, then its pytest suite (real Qiskit Aer, PennyLane and Cirq states; the web
#    view in Debian's Chromium driven by Playwright).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need, installed once when missing: mkfs.ext4 for the volume
# plugin's disk tier, a Docker engine and busybox for its end-to-end tests, curl and socat,
# Chromium for the web view's browser tests (driven by Playwright, no browser download), and
# LLVM's llvm-as/llvm-dis for the QIR bitcode tests, and OpenMPI (mpirun, and mpicc for
# mpi4py's build) for the tests of states written by MPI ranks.
if ! command -v mkfs.ext4 >/dev/null || ! command -v dockerd >/dev/null || ! command -v busybox >/dev/null \
    || ! command -v curl >/dev/null || ! command -v socat >/dev/null || ! command -v chromium >/dev/null \
    || ! command -v llvm-dis >/dev/null || ! command -v mpirun >/dev/null; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io e2fsprogs busybox-static curl socat openssl \
        chromium llvm openmpi-bin libopenmpi-dev >/dev/null
fi

./scripts/cluster.sh install

venv=target/py-venv
if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
export VIRTUAL_ENV="$PWD/$venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
python -m pip install -q --disable-pip-version-check -r python/requirements-test.txt \
    -r python/requirements-cluster.txt

# Start the services; stop them however this script ends.
cluster_dir="$PWD/target/cluster"
moto_port=39500
cleanup() {
    ./scripts/cluster.sh stop "$cluster_dir" 2>/dev/null || true
    [ -n "${moto_pid:-}" ] && kill "$moto_pid" 2>/dev/null || true
}
trap cleanup EXIT
./scripts/cluster.sh start "$cluster_dir"
# shellcheck disable=SC1091
source "$cluster_dir/env"
moto_server -H 127.0.0.1 -p "$moto_port" >"$cluster_dir/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$moto_port/" && break
    sleep 0.2
done
curl -s -o /dev/null -X PUT "http://127.0.0.1:$moto_port/qstore-moto"
export QSTORE_TEST_MOTO_ENDPOINT="http://127.0.0.1:$moto_port"
export QSTORE_REQUIRE_CLUSTER=1
export QSTORE_REQUIRE_LLVM=1

cargo test --workspace
python -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps \
    --force-reinstall ./python
# The simulator tests drive the qstore binary that `cargo test` built; the browser tests
# (python/tests/test_ui.py), the QIR tests against qir-runner (python/tests/test_qir.py) and
# the MPI tests (python/tests/test_mpi.py) must run, not skip; the browser tests leave their screenshots in target/ui-screenshots.
export QSTORE_BIN="$PWD/target/debug/qstore"
export QSTORE_REQUIRE_BROWSER=1 QSTORE_REQUIRE_QIR=1 QSTORE_REQUIRE_MPI=1
python -m pytest -q python/tests

# The Docker volume plugin against a real Docker engine (installs and starts one if needed).
./scripts/test-docker.sh
