"""Zarr v3 export and import against the Zarr ecosystem: `qstore export PATH --format zarr DIR`
opens in zarr-python 3 and tensorstore bit-exact with its attributes, and `qstore import PATH
DIR` stores arrays that zarr-python wrote with each supported codec (none, zstd, gzip, crc32c,
gzip + crc32c, big-endian bytes; vectors and matrices) bit-exact; an unsupported codec, a
malformed zarr.json and a truncated chunk are refused (exit 6) naming the file, with nothing
committed."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import qstore
from conftest import random_state

ROOT = Path(__file__).resolve().parents[2]
QSTORE = os.environ.get("QSTORE_BIN", str(ROOT / "target" / "debug" / "qstore"))
if not os.path.exists(QSTORE):
    pytest.skip(f"the qstore binary is not built ({QSTORE})", allow_module_level=True)
import tensorstore as ts  # noqa: E402  (python/requirements-test.txt installs both)
import zarr  # noqa: E402
from zarr.codecs import BytesCodec, Crc32cCodec, GzipCodec, ZstdCodec  # noqa: E402


def q(repo, *args):
    return subprocess.run([QSTORE, "--repo", str(repo), *args], capture_output=True, text=True)


@pytest.fixture
def made(tmp_path):
    repo = tmp_path / "repo"
    r = qstore.open(repo)
    psi = random_state(16, seed=3)
    psi[: 1 << 14] = 0  # a zero stretch: chunks left out of the export
    r.put("run/psi", psi, tags={"circuit": "qft16"}, dense=True)
    rho = np.outer(psi[-32:], psi[-32:].conj())
    rho /= np.trace(rho).real
    r.put("run/rho", rho)
    r.put("run/c64", random_state(11, seed=4, dtype=np.complex64))
    return r, repo, psi, rho


def test_export_opens_in_zarr_python_and_tensorstore(made, tmp_path):
    r, repo, psi, rho = made
    out = q(repo, "export", "run/psi", "--format", "zarr", str(tmp_path / "psi.zarr"))
    assert out.returncode == 0, out.stderr
    assert "all-zero chunks left out" in out.stdout
    a = zarr.open_array(tmp_path / "psi.zarr", mode="r")
    assert a[:].tobytes() == psi.tobytes()
    attrs = dict(a.attrs)["qstore"]
    assert attrs["kind"] == "statevector" and attrs["qubits"] == 16
    assert attrs["tags"]["circuit"] == "qft16" and "qubit q" in attrs["qubit_order"]
    assert a.chunks[0] * 16 == 1 << 20  # one qstore chunk (1 MiB) per Zarr chunk
    for path, want in [("run/rho", rho), ("run/c64", r.get("run/c64"))]:
        d = tmp_path / (path.replace("/", "_") + ".zarr")
        assert q(repo, "export", path, str(d)).returncode == 0
        got = zarr.open_array(d, mode="r")[:]
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(tmp_path / "psi.zarr")}}).result()
    assert np.asarray(t.read().result()).tobytes() == psi.tobytes()
    m = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(tmp_path / "run_rho.zarr")}}).result()
    assert np.asarray(m.read().result()).tobytes() == rho.tobytes()


@pytest.mark.parametrize("name,kw", [
    ("none", dict(compressors=None)),
    ("zstd", dict(compressors=[ZstdCodec(level=5)])),
    ("gzip", dict(compressors=[GzipCodec(level=6)])),
    ("crc32c", dict(compressors=[Crc32cCodec()])),
    ("gzip-crc32c", dict(compressors=[GzipCodec(), Crc32cCodec()])),
    ("big-endian", dict(serializer=BytesCodec(endian="big"), compressors=[ZstdCodec()])),
])
def test_import_of_arrays_zarr_python_wrote(made, tmp_path, name, kw):
    r, repo, psi, rho = made
    for label, arr, chunks in [("sv", psi, (3000,)), ("dm", rho, (7, 32))]:
        d = tmp_path / f"{name}-{label}.zarr"
        z = zarr.create_array(d, shape=arr.shape, chunks=chunks, dtype=arr.dtype, **kw)
        z[:] = arr
        out = q(repo, "import", f"imported/{name}/{label}", str(d))
        assert out.returncode == 0, out.stderr
        got = qstore.open(repo).get(f"imported/{name}/{label}")
        assert got.tobytes() == arr.tobytes()


def test_bad_arrays_are_refused_naming_the_file(made, tmp_path):
    r, repo, psi, _ = made
    before = len(r.log())
    d = tmp_path / "blosc.zarr"
    z = zarr.create_array(d, shape=(1000,), chunks=(100,), dtype="complex128",
                          compressors=[zarr.codecs.BloscCodec()])
    z[:] = psi[:1000]
    out = q(repo, "import", "x", str(d))
    assert out.returncode == 6 and "blosc" in out.stderr and "zarr.json" in out.stderr, out.stderr
    d = tmp_path / "broken.zarr"
    d.mkdir()
    (d / "zarr.json").write_text('{"zarr_format": 3, "node_type": "array", "shape": [')
    out = q(repo, "import", "x", str(d))
    assert out.returncode == 6 and "broken.zarr/zarr.json" in out.stderr, out.stderr
    d = tmp_path / "short.zarr"
    z = zarr.create_array(d, shape=(1000,), chunks=(100,), dtype="complex128", compressors=None)
    z[:] = psi[:1000] + 1
    chunk = d / "c" / "3"
    chunk.write_bytes(chunk.read_bytes()[:-16])
    out = q(repo, "import", "x", str(d))
    assert out.returncode == 6 and "short.zarr/c/3" in out.stderr and "truncated" in out.stderr, out.stderr
    assert len(qstore.open(repo).log()) == before
