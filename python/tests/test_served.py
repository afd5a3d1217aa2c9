"""The Python package against a repository served by `qstore serve` (a real server process):
the round trip over https:// with a private CA and over loopback http://, tokens from the
argument and from QSTORE_TOKEN, and the errors for a token that does not allow a write
(NotAuthorised) and a server that is gone (Unavailable)."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import qstore
from conftest import random_state, same_bytes

ROOT = Path(__file__).resolve().parents[2]
QSTORE = os.environ.get("QSTORE_BIN", str(ROOT / "target" / "debug" / "qstore"))

if not os.path.exists(QSTORE):
    pytest.skip(f"the qstore binary is not built ({QSTORE}); cargo build first", allow_module_level=True)


def token(repo, scope, *extra):
    out = subprocess.run(
        [QSTORE, "--repo", str(repo), "token", "create", "--scope", scope, *extra],
        capture_output=True, text=True, check=True,
    )
    return out.stdout.split()[-1]


class Server:
    def __init__(self, repo, *extra):
        self.proc = subprocess.Popen(
            [QSTORE, "serve", "--repo", f"states={repo}", "--listen", "127.0.0.1:0", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        line = self.proc.stdout.readline().strip()
        assert line.startswith("listening "), line
        self.url = line.split()[1] + "/states"

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def served(tmp_path):
    repo = tmp_path / "repo"
    subprocess.run([QSTORE, "init", str(repo)], check=True, capture_output=True)
    tls = tmp_path / "tls"
    s = Server(repo, "--self-signed", str(tls))
    s.repo, s.ca = repo, tls / "ca.pem"
    yield s
    s.stop()


def test_round_trip_over_tls_with_scoped_tokens(served):
    write = token(served.repo, "write")
    read = token(served.repo, "read")
    r = qstore.open(served.url, token=write, ca_cert=served.ca)
    psi = random_state(16, seed=1)
    with r.transaction("main", message="two states") as tx:
        tx.put("run/psi", psi)
        tx.put("run/phi", random_state(10, seed=2))
    r.branch("exp-1")
    psi2 = psi.copy()
    psi2[7] = 0.25
    r.put("run/psi", psi2, branch="exp-1", message="changed")
    ro = qstore.open(served.url, token=read, ca_cert=served.ca)
    assert same_bytes(ro.get("run/psi"), psi)
    assert same_bytes(ro.get("run/psi", ref="exp-1"), psi2)
    assert [c.message for c in ro.log("exp-1")][:2] == ["changed", "two states"]
    assert {d["path"] for d in ro.diff("main", "exp-1")} == {"run/psi"}
    assert ro.top_k("run/phi", 3)[0][1] > 0
    np.testing.assert_allclose(ro.marginals("run/psi", [0]).sum(), 1.0, rtol=1e-12)
    before = ro.branches()
    with pytest.raises(qstore.NotAuthorised, match="scope read"):
        ro.put("x", psi)
    with pytest.raises(PermissionError):
        ro.branch("y")
    assert ro.branches() == before
    # The local repository, read directly, has the same history.
    local = qstore.open(served.repo, create=False)
    assert local.branches() == before
    assert local.fsck(full=True)["problems"] == []


def test_token_from_the_environment_and_a_server_that_is_gone(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    subprocess.run([QSTORE, "init", str(repo)], check=True, capture_output=True)
    s = Server(repo)
    assert s.url.startswith("http://127.0.0.1:")
    monkeypatch.setenv("QSTORE_TOKEN", token(repo, "write", "--branch", "exp-"))
    r = qstore.open(s.url)
    with pytest.raises(qstore.NotAuthorised):
        r.put("x", random_state(4))
    r.branch("exp-a")
    r.put("x", random_state(4), branch="exp-a")
    assert "x" in [i.path for i in r.ls(ref="exp-a")]
    monkeypatch.setenv("QSTORE_TOKEN", "qst_" + "0" * 16 + "_" + "0" * 64)
    with pytest.raises(qstore.NotAuthorised, match="unknown token"):
        qstore.open(s.url)
    s.stop()
    with pytest.raises(qstore.Unavailable):
        r.log()
    with pytest.raises(OSError):
        r.get("x", ref="exp-a")
