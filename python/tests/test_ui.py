"""The web view (`qstore serve --ui`, `qstore ui`) in a real browser: Playwright for Python
driving Debian's Chromium (`executable_path`, no browser download). The repository is made
here: a `qstore run` branch with checkpoints, a GHZ and a W state, a noisy density matrix from
`qstore run --density-matrix`, and a commit that changes one state and removes another.

Checked: the commit graph lists exactly the repository's commits; the GHZ inspector shows two
bars of 0.5 labelled 000 and 111, the W inspector three of 1/3; the density matrix's heat map
and Bloch table; the diff lists the right paths with the right change and fidelity; the
checkpoint series has one point per checkpoint; a read token sees no write controls and a
write token creates a tag from the page; `qstore ui`'s one-time login code works once and
neither it nor the session token reaches the server's log. Screenshots land in
target/ui-screenshots (or $QSTORE_UI_SCREENSHOTS) as test artifacts."""

import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import qstore
from conftest import random_state

ROOT = Path(__file__).resolve().parents[2]
QSTORE = os.environ.get("QSTORE_BIN", str(ROOT / "target" / "debug" / "qstore"))
CHROMIUM = os.environ.get("QSTORE_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
SHOTS = Path(os.environ.get("QSTORE_UI_SCREENSHOTS", ROOT / "target" / "ui-screenshots"))
REQUIRED = os.environ.get("QSTORE_REQUIRE_BROWSER") == "1"

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - the test script installs it
    sync_playwright = None

missing = []
if not os.path.exists(QSTORE):
    missing.append(f"the qstore binary ({QSTORE})")
if sync_playwright is None:
    missing.append("playwright (pip install playwright)")
if not os.path.exists(CHROMIUM):
    missing.append(f"chromium ({CHROMIUM}; apt-get install chromium)")
if missing:
    if REQUIRED:
        raise RuntimeError("the browser tests need " + ", ".join(missing))
    pytest.skip("the browser tests need " + ", ".join(missing), allow_module_level=True)

CIRCUIT = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[3];
h q[0];
cx q[0],q[1];
cx q[1],q[2];
rz(0.3) q[2];
ry(0.4) q[1];
"""

S2, S3 = 1 / math.sqrt(2), 1 / math.sqrt(3)


def qs(*args, **kw):
    return subprocess.run([QSTORE, *args], capture_output=True, text=True, check=True, **kw)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The repository the page is tested on, and what the test expects of it."""
    tmp = tmp_path_factory.mktemp("ui")
    path = tmp / "repo"
    qs("init", str(path))
    r = qstore.open(path)
    ghz = np.zeros(8, np.complex128)
    ghz[0] = ghz[7] = S2
    w = np.zeros(8, np.complex128)
    w[1] = w[2] = w[4] = S3
    with r.transaction("main", message="GHZ and W") as tx:
        tx.put("states/ghz", ghz)
        tx.put("states/w", w)
        tx.put("states/old", random_state(3, seed=4))
    first = r.resolve("main")
    circ = tmp / "circ.qasm"
    circ.write_text(CIRCUIT)
    qs("--repo", str(path), "run", str(circ), "--density-matrix",
       "--noise", "depolarizing:p1=0.01,p2=0.02", "--output", "states/dm")
    w2 = w.copy()
    w2[4] = 1j * S3
    with r.transaction("main", message="W with a phase; old removed; a lossy state") as tx:
        tx.put("states/w", w2)
        tx.delete("states/old")
        tx.put("states/lossy", random_state(11, seed=5), lossy="max-infidelity=1e-6")
    qs("--repo", str(path), "run", str(circ), "--branch", "exp-run", "--checkpoint-every", "1",
       "--method", "dense", "--output", "final")
    # A long branch, so the graph comes in pages.
    r.branch("exp-many")
    for i in range(60):
        with r.transaction("exp-many", message=f"step {i}") as tx:
            tx.put("many/psi", random_state(2, seed=100 + i))
    commits = {c.id for ref in ("main", "exp-run", "exp-many") for c in r.log(ref)}
    tokens = {
        s: qs("--repo", str(path), "token", "create", "--scope", s).stdout.split()[-1]
        for s in ("read", "write")
    }
    return {"path": path, "repo": r, "first": first, "commits": commits, "tokens": tokens,
            "checkpoints": [c.id for c in r.log("exp-run") if c.message.startswith("checkpoint")]}


class Server:
    """`qstore ARGS...` serving until stopped; the first stdout line names the address."""

    def __init__(self, args, log):
        self.log = log
        self.proc = subprocess.Popen([QSTORE, *args], stdout=subprocess.PIPE,
                                     stderr=open(log, "w"), text=True)
        line = self.proc.stdout.readline().strip()
        assert line.startswith("listening "), line
        self.base = line.split()[1]
        self.lines = []

    def next_line(self):
        return self.proc.stdout.readline().strip()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield b
        b.close()


def page_of(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    return page


def sign_in(page, base, token):
    page.goto(base + "/ui/")
    page.fill("#login-token", token)
    page.click("#login-form button")
    page.wait_for_selector("li.commit")


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def inspect(page, path, ref="main"):
    page.click("button[data-tab=inspect]")
    page.fill("#inspect-ref", ref)
    page.fill("#inspect-path", path)
    page.click("#inspect-form button")
    page.wait_for_selector(f"#state-info td[data-key=path]:text-is('{path}')")


def bars(page):
    return [(b.get_attribute("data-bits"), float(b.get_attribute("data-probability")))
            for b in page.locator("#topk rect.bar").all()]


@pytest.fixture(scope="module")
def served(made, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    s = Server(["serve", "--repo", f"states={made['path']}", "--listen", "127.0.0.1:0", "--ui"], log)
    yield s
    s.stop()


def test_read_token_sees_graph_inspector_diff_series_and_no_write_controls(made, served, browser):
    page = page_of(browser)
    sign_in(page, served.base, made["tokens"]["read"])
    # The graph comes 50 commits at a time; after "Older commits" it has exactly the
    # repository's commits, with the branch heads labelled.
    assert page.locator("li.commit").count() == 50
    page.click("#more")
    expect(page.locator("li.commit")).to_have_count(len(made["commits"]))
    assert page.locator("#more:visible").count() == 0
    ids = {li.get_attribute("data-commit") for li in page.locator("li.commit").all()}
    assert ids == made["commits"]
    assert page.locator("#branches li").count() == 3
    main_row = page.locator(f"li.commit[data-commit='{made['repo'].resolve('main')}']")
    assert "main" in main_row.inner_text()
    assert page.locator("#graph svg circle.node").count() == len(made["commits"])
    # A read token: no write control anywhere.
    assert page.locator(".write-control:visible").count() == 0
    assert page.locator("body[data-scope=read]").count() == 1
    shot(page, "history")

    # Clicking a commit lists its states.
    main_row.click()
    page.wait_for_selector("#commit-detail ul.states a[data-path='states/ghz']")
    assert {a.get_attribute("data-path") for a in page.locator("#commit-detail ul.states a").all()} == {
        "states/ghz", "states/w", "states/dm", "states/lossy"}

    # GHZ: exactly two bars of 0.5, labelled with the right bit strings.
    inspect(page, "states/ghz")
    got = bars(page)
    assert sorted(b for b, _ in got) == ["000", "111"]
    assert all(abs(p - 0.5) < 1e-12 for _, p in got)
    assert "qubit n-1 first" in page.inner_text("#qubit-order")
    assert page.locator("#qubits tr[data-qubit]").count() == 3
    shot(page, "inspector-ghz")

    # W (with the phase on |100>): three bars of 1/3, one of them coloured differently.
    inspect(page, "states/w")
    got = bars(page)
    assert sorted(b for b, _ in got) == ["001", "010", "100"]
    assert all(abs(p - 1 / 3) < 1e-12 for _, p in got)
    fills = {b.get_attribute("data-bits"): b.get_attribute("fill") for b in page.locator("#topk rect.bar").all()}
    assert fills["001"] == fills["010"] != fills["100"]
    assert page.locator("svg.amplitudes rect").count() == 3

    # The density matrix: heat map of 8x8 cells, its norm, Bloch vectors of three qubits.
    inspect(page, "states/dm")
    assert page.locator("#heatmap rect").count() == 64
    assert page.inner_text("#state-info td[data-key=kind]") == "density_matrix"
    assert page.locator("#qubits tr[data-qubit]").count() == 3
    shot(page, "inspector-density-matrix")

    # A lossy state shows its mode and its fidelity to the exact state.
    inspect(page, "states/lossy")
    lossy = page.inner_text("#state-info td[data-key=lossy]")
    assert "max-infidelity=1e-6" in lossy
    f = float(lossy.split("fidelity ")[1].split()[0])
    assert 1 - 1e-6 <= f < 1 and f == pytest.approx(made["repo"].info("states/lossy").fidelity, abs=1e-11)
    assert "more than the 1024" in page.inner_text("#inspector")  # 2,048 amplitudes are not all sent

    # Diff of the first commit against main.
    page.click("button[data-tab=diff]")
    page.fill("#diff-from", made["first"])
    page.fill("#diff-to", "main")
    page.click("#diff-form button")
    page.wait_for_selector("#diff-table")
    rows = {r.get_attribute("data-path"): r.get_attribute("data-change")
            for r in page.locator("tr.diff-row").all()}
    assert rows == {"states/dm": "added", "states/w": "changed", "states/old": "removed",
                    "states/lossy": "added"}
    fid = page.locator("tr.diff-row[data-path='states/w'] td").nth(3).inner_text()
    assert abs(float(fid) - 5 / 9) < 1e-9
    shot(page, "diff")

    # The checkpoint series of the run: one point per checkpoint, fidelities in [0, 1].
    page.click("button[data-tab=series]")
    page.fill("#series-ref", "exp-run")
    page.fill("#series-path", "checkpoints/state")
    page.fill("#series-final", "final")
    page.click("#series-form button")
    page.wait_for_selector("#series-chart")
    fids = [float(c.get_attribute("data-fidelity")) for c in page.locator("#series-chart circle.point.fidelity").all()]
    assert len(fids) == len(made["checkpoints"]) == page.locator("tr.series-row").count()
    assert all(0 <= f <= 1 + 1e-12 for f in fids)
    ents = [float(c.get_attribute("data-entropy")) for c in page.locator("#series-chart circle.point.entropy").all()]
    assert ents[0] == pytest.approx(1.0)  # after H on qubit 0: two outcomes
    shot(page, "series")

    # Storage, with a scratch space held open by this process.
    with made["repo"].scratch(quota="64MiB") as sc:
        sc.put(random_state(8, seed=6))
        page.click("button[data-tab=history]")
        page.click("button[data-tab=storage]")
        page.wait_for_selector("#scratch-table")
        assert "dedup ratio" in page.inner_text("#storage-table")
        assert page.locator("#scratch-table tr").count() == 2
        assert "yes" in page.inner_text("#scratch-table")
        shot(page, "storage")
    assert page.errors == []
    # The token went in headers only: the server log names its id, never the secret.
    assert made["tokens"]["read"] not in Path(served.log).read_text()


def test_write_token_sees_write_controls_and_tags_a_commit(made, served, browser):
    page = page_of(browser)
    sign_in(page, served.base, made["tokens"]["write"])
    assert page.locator("#ref-form:visible").count() == 1
    assert page.locator("button.write-control:visible").count() == 3  # delete, for each branch
    first = made["first"]
    page.click("#more")
    page.locator(f"li.commit[data-commit='{first}']").click()
    # (The page's Content-Security-Policy forbids eval, so no wait_for_function here.)
    expect(page.locator("#ref-target")).to_have_value(first)
    page.select_option("#ref-kind", "tags")
    page.fill("#ref-name", "from-the-page")
    page.click("#ref-form button")
    page.wait_for_selector("#tags li[data-ref='tags/from-the-page']")
    assert made["repo"].tags()["from-the-page"] == first
    shot(page, "write-token")
    made["repo"].delete_tag("from-the-page")
    assert page.errors == []


def test_qstore_ui_login_code_works_once_and_stays_out_of_logs(made, browser, tmp_path):
    log = tmp_path / "ui.log"
    s = Server(["--repo", str(made["path"]), "ui"], log)
    try:
        url = s.next_line()
        assert url.startswith("open http://127.0.0.1:") and "/ui/#code=qsc_" in url
        url = url.split()[1]
        code = url.split("#code=")[1]
        page = page_of(browser)
        page.goto(url)
        page.wait_for_selector("li.commit")
        # The code left the address bar; the session token lives in the tab only.
        assert "code=" not in page.url
        session = page.evaluate("sessionStorage.getItem('qstore-token')")
        assert session.startswith("qst_")
        assert page.locator(".write-control:visible").count() == 0
        page.click("#more")
        expect(page.locator("li.commit")).to_have_count(len(made["commits"]))
        # The same URL again (another tab, or from the shell's history) is refused.
        again = page_of(browser)
        again.goto(url)
        again.wait_for_selector("#login:visible")
        assert "login code refused" in again.inner_text("#error")
        text = log.read_text()
        assert code not in text and session.split("_")[2] not in text
        assert page.errors == [] and again.errors == []
    finally:
        s.stop()
