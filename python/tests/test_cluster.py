"""The Python package on a cluster repository: S3 on the Garage cluster, refs in etcd (both
started by scripts/test-all.sh). Skipped without the cluster unless QSTORE_REQUIRE_CLUSTER."""

import os
import uuid
from urllib.parse import quote

import numpy as np
import pytest

import qstore
from conftest import random_state, same_bytes

ENDPOINT = os.environ.get("QSTORE_TEST_S3_ENDPOINT")
ETCD = os.environ.get("QSTORE_TEST_ETCD")
BUCKET = os.environ.get("QSTORE_TEST_BUCKET")

if not (ENDPOINT and ETCD and BUCKET):
    if os.environ.get("QSTORE_REQUIRE_CLUSTER"):
        raise RuntimeError("QSTORE_REQUIRE_CLUSTER is set but the cluster is not running")
    pytest.skip("no cluster (scripts/test-all.sh starts one)", allow_module_level=True)


def test_a_cluster_repository_from_python():
    prefix = f"py-{uuid.uuid4().hex[:12]}"
    url = f"s3://{BUCKET}/{prefix}?endpoint={quote(ENDPOINT, safe='')}&region=garage"
    refs = f"etcd://{ETCD}/{prefix}"
    # Without its ref store the repository cannot even be created.
    with pytest.raises(qstore.InvalidState, match="refs=etcd://"):
        qstore.open(url)
    repo = qstore.open(url, refs=refs)
    psi = random_state(12, seed=5)
    with repo.transaction("main", message="from python") as tx:
        tx.put("cluster/psi", psi, tags={"where": "garage"})
    again = qstore.open(url, refs=refs, create=False)
    assert same_bytes(again.get("cluster/psi"), psi)
    assert again.log("main")[0].message == "from python"
    # QSTORE_REFS works as the default ref store.
    os.environ["QSTORE_REFS"] = refs
    try:
        assert same_bytes(qstore.open(url, create=False).get("cluster/psi"), psi)
    finally:
        del os.environ["QSTORE_REFS"]
