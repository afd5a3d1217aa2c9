"""Moving history between repositories from Python: clone, push, pull, named remotes, the
background drain; against local repositories and, when the cluster runs, an S3 + etcd one."""

import os
import uuid
from urllib.parse import quote

import numpy as np
import pytest

import qstore
from conftest import random_state, same_bytes


def test_clone_push_pull_between_local_repositories(tmp_path):
    a = qstore.open(tmp_path / "a")
    psi = random_state(14, seed=1)
    with a.transaction("main", message="first") as tx:
        tx.put("run/psi", psi)
    a.tag("v1")
    b = qstore.clone(a.address, tmp_path / "b")
    assert b.remotes() == {"origin": a.address}
    assert b.branches() == a.branches() and b.tags() == a.tags()
    assert same_bytes(b.get("run/psi", ref="v1"), psi)
    # One amplitude changes: one chunk goes over.
    psi2 = psi.copy()
    psi2[3] = 0.5
    with a.transaction("main", message="second") as tx:
        tx.put("run/psi", psi2)
    report = a.push(b.address, ["main"])
    assert report["chunks_sent"] == 1
    assert report["refs"][0]["change"] == "fast_forward"
    assert same_bytes(b.get("run/psi"), psi2)
    # b moves on, a too: a plain push is refused with a Conflict, nothing moves.
    with b.transaction("main", message="theirs") as tx:
        tx.put("theirs", random_state(4, seed=2))
    with a.transaction("main", message="mine") as tx:
        tx.put("mine", random_state(4, seed=3))
    theirs = b.resolve("main")
    with pytest.raises(qstore.Conflict, match="not a fast-forward"):
        a.push(b.address, ["main"])
    assert b.resolve("main") == theirs
    # Pull theirs under another name, by remote name.
    a.add_remote("b", str(tmp_path / "b"))
    a.pull("b", ["main:from-b"])
    assert a.resolve("from-b") == theirs
    assert a.push("b", ["main"], force=True)["refs"][0]["change"] == "forced"
    assert b.fsck(full=True)["problems"] == []
    with pytest.raises(qstore.Error, match="no remote named"):
        a.push("nowhere")


def test_a_drain_pushes_checkpoints_in_the_background(tmp_path):
    local = qstore.open(tmp_path / "local")
    shared = str(tmp_path / "shared")
    with local.drain_to(shared, branch="job", every="50ms") as drain:
        local.branch("job")
        for step in range(5):
            with local.transaction("job", message=f"step {step}") as tx:
                tx.put("state", random_state(10, seed=step))
            drain.wake()
    report = drain.report
    assert report["behind"] == 0 and report["last_error"] is None
    remote = qstore.open(shared, create=False)
    assert remote.resolve("job") == local.resolve("job")
    assert [c.id for c in remote.log("job")] == [c.id for c in local.log("job")]


ENDPOINT = os.environ.get("QSTORE_TEST_S3_ENDPOINT")
ETCD = os.environ.get("QSTORE_TEST_ETCD")
BUCKET = os.environ.get("QSTORE_TEST_BUCKET")


@pytest.mark.skipif(
    not (ENDPOINT and ETCD and BUCKET) and not os.environ.get("QSTORE_REQUIRE_CLUSTER"),
    reason="no cluster (scripts/test-all.sh starts one)",
)
def test_clone_to_the_cluster_and_back(tmp_path):
    prefix = f"pyx-{uuid.uuid4().hex[:12]}"
    url = f"s3://{BUCKET}/{prefix}?endpoint={quote(ENDPOINT, safe='')}&region=garage"
    refs = f"etcd://{ETCD}/{prefix}"
    a = qstore.open(tmp_path / "a")
    psi = random_state(13, seed=7)
    with a.transaction("main", message="to the cluster") as tx:
        tx.put("psi", psi)
    remote = qstore.clone(a.address, url, refs=refs)
    assert remote.resolve("main") == a.resolve("main")
    back = qstore.clone(remote.address, tmp_path / "back")
    assert same_bytes(back.get("psi"), psi)
    assert back.fsck(full=True)["problems"] == []
