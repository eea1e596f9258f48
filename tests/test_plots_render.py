"""`dvc plots show` renders offline: the page it writes, opened in headless
Chromium with every network name unresolvable, draws every chart from its
own data, with no console error and no request beyond file: and data: URLs.
Chromium is driven over the DevTools protocol on a pipe, so the test needs
Debian's chromium package (.ci/run installs it) and the page template that
scripts/setup.sh builds (.dvc/plots/offline.html); without them it is
skipped, except on CI (CI=true), where it fails. The smoke run's page is
checked in tests/test_pipeline.py."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.dvcstages import CURVE_PLOT
from pipeline.files import write_curves
from tests.helpers import REPO, compose, dvc, dvc_env, sh, write_params

OFFLINE_PAGE = REPO / ".dvc" / "plots" / "offline.html"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Run in the page once it has loaded: waits for every chart (the page's
# vegaEmbed wrapper keeps them in rgfCharts, .dvc/plots/page.html) and
# describes it. `drawn` counts the marks drawn from the chart's own rows
# (DVC gives every row a `rev`), not axes, legends or constant rules.
INSPECT = """
(async () => {
  const charts = window.rgfCharts || [];
  await Promise.all(charts.map((c) => c.done));
  const drawn = (mark) => (mark.items || []).reduce((n, item) =>
    n + (mark.marktype === "group" ? (item.items || []).reduce((m, child) => m + drawn(child), 0)
         : (mark.role === "mark" && item.datum && "rev" in item.datum ? 1 : 0)), 0);
  return {
    charts: charts.map((c) => ({
      target: c.target,
      rows: c.rows,
      error: c.error || null,
      drawn: c.view ? drawn(c.view.scenegraph().root) : 0,
      text: [...document.querySelectorAll(c.target + " svg text")].map((t) => t.textContent).join(" | "),
    })),
    images: [...document.images].map((i) => ({src: i.src.slice(0, 120), width: i.naturalWidth})),
  };
})()
"""


def browser() -> str | None:
    return os.environ.get("RGF_CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)


def require_browser_and_page() -> str:
    """The browser to use; skips (fails on CI) when it or the offline page is missing."""
    missing = []
    found = browser()
    if found is None:
        missing.append("Chromium (apt-get install chromium)")
    if not OFFLINE_PAGE.is_file():
        missing.append(f"{OFFLINE_PAGE.relative_to(REPO)} (bash scripts/setup.sh)")
    if missing:
        message = "needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


class DevTools:
    """Headless Chromium over the DevTools protocol on a pipe
    (--remote-debugging-pipe: the browser reads commands on fd 3 and writes
    replies and events on fd 4, each a JSON text ended by a NUL byte)."""

    def __init__(self, binary: str, profile: Path):
        to_browser, self._out = os.pipe()
        self._in, from_browser = os.pipe()

        def pipes_on_3_and_4():  # in the child, before exec
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        args = [
            binary,
            "--headless",
            "--no-sandbox",  # root in CI's container
            "--disable-gpu",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves: a CDN script could not load
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-extensions",
            "--disable-sync",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,  # fds 3 and 4; Python's own fds are close-on-exec anyway
            preexec_fn=pipes_on_3_and_4,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium exited (code {self.proc.poll()})")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        """Send one command and return its result; events that arrive meanwhile go to `events`."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._read(deadline))

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._in)
        os.close(self._out)


def render(page: Path, binary: str, profile: Path) -> dict:
    """Open `page` in headless Chromium with no network; returns what INSPECT
    found, plus `errors` (console errors, uncaught exceptions, failed loads),
    `warnings` (the console's) and `requests` (every URL the page asked for)."""
    chrome = DevTools(binary, profile)
    try:
        target = chrome.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = chrome.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            chrome.call(f"{domain}.enable", session=session)
        chrome.call("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        chrome.wait_for("Page.loadEventFired")
        found = chrome.call(
            "Runtime.evaluate",
            {"expression": INSPECT, "awaitPromise": True, "returnByValue": True},
            session=session,
            timeout=120,
        )
        if "exceptionDetails" in found:
            raise AssertionError(f"inspecting the page failed: {found['exceptionDetails']}")
        result = found["result"]["value"]
    finally:
        chrome.close()
    errors, warnings, requests = [], [], []
    for event in chrome.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert", "warning"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            (warnings if params["type"] == "warning" else errors).append(text)
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            errors.append(details.get("exception", {}).get("description") or details.get("text", ""))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(params["entry"]["text"] + " " + params["entry"].get("url", ""))
        elif method == "Network.requestWillBeSent":
            requests.append(params["request"]["url"])
    return {**result, "errors": errors, "warnings": warnings, "requests": requests}


def assert_renders(page: Path, tmp_path: Path) -> dict:
    """Every chart of `page` drawn offline from its own rows, with no console
    error and no request to the network; returns the render for more checks."""
    html = page.read_text()
    assert "cdn.jsdelivr" not in html, "the page loads Vega from a CDN (plots.html_template unset?)"
    boxes = ["#" + box for box in re.findall(r'<div id = "([^"]+)">\s*<script type = "text/javascript">', html)]
    found = render(page, require_browser_and_page(), tmp_path / "chromium-profile")
    assert found["errors"] == []
    assert [url for url in found["requests"] if not url.startswith(("file:", "data:", "about:"))] == []
    # every chart went through the page's wrapper, which keeps its view
    assert boxes and sorted(boxes) == sorted(c["target"] for c in found["charts"])
    empty = [c for c in found["charts"] if c["error"] or not c["rows"] or not c["drawn"]]
    assert empty == [], "charts with an error or drawn from no rows"
    assert all(image["width"] > 0 for image in found["images"]), found["images"]
    return found


def plots_show(root: Path, env: dict) -> Path:
    """`dvc plots show` in `root`, with the page template setup.sh built; returns the page.
    Skips (fails on CI) naming the missing step when the page or the browser is missing."""
    require_browser_and_page()
    shutil.copy2(OFFLINE_PAGE, root / ".dvc" / "plots" / OFFLINE_PAGE.name)
    out = dvc(root, env, "plots", "show").stdout
    assert "DVC failed to load" not in out, out
    return root / "dvc_plots" / "index.html"


def test_the_page_template_needs_no_network():
    config = (REPO / ".dvc" / "config").read_text()
    assert "html_template = plots/offline.html" in config
    template = (REPO / ".dvc" / "plots" / "page.html").read_text()
    assert "{plot_divs}" in template and "{scripts}" not in template  # {scripts}: DVC's CDN tags
    assert "<script src" not in template
    lock = json.loads((REPO / "package-lock.json").read_text())["packages"]
    for name in ("vega", "vega-lite", "vega-embed"):
        assert lock[f"node_modules/{name}"]["integrity"].startswith("sha512-")


@pytest.fixture
def study(tmp_path):
    """A DVC repo holding only the project's plot definitions and templates,
    with what the report stage writes for a GAN (its balanced and skewed
    histories, with the probe; class 9 of its z undefined: no samples), a
    control (a history of epochs only) and one sample grid."""
    from PIL import Image

    from pipeline.stages.report import main as report
    from tests.test_report import write_metrics

    root = tmp_path / "study"
    (root / ".dvc" / "plots").mkdir(parents=True)
    env = dvc_env()
    sh(["git", "init", "-q"], root, env)
    shutil.copy2(REPO / ".dvc" / "config", root / ".dvc" / "config")
    for template in (REPO / ".dvc" / "plots").glob("*.json"):
        shutil.copy2(template, root / ".dvc" / "plots" / template.name)
    # the sample stage's grids are plots of that stage: one stands in for them
    plots = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"] + ["plots/samples/gan-colour-balanced-s0.png"]
    # the GAN's train stage, as dvc.yaml declares its DVCLive curves
    train = {"cmd": "true", "plots": [{"plots/train/gan-colour-s0": CURVE_PLOT}]}
    dvcyaml = {"stages": {"train-gan": train}, "plots": plots}
    (root / "dvc.yaml").write_text(yaml.safe_dump(dvcyaml, sort_keys=False, allow_unicode=True))
    for model in ("gan", "data-memorizer"):
        write_metrics(root / "metrics", model, "colour", 1)
    history = root / "plots" / "train" / "gan-colour-s0"
    for dataset, shift in (("balanced", 0.0), ("skewed_k1", 0.1)):
        rows = [
            {"epoch": e, "d_loss": 1.3 - 0.1 * e, "d_loss_k1_with": 0.7 - shift * e}
            | {"d_loss_k1_without": 0.7 + shift * e, "g_loss": 0.7 + 0.1 * e, "mode_seeking": 2.0}
            for e in (1, 2, 3)
        ]
        write_curves(history / dataset, rows)  # as the train stage logs them (DVCLive); a control has none
    (root / "plots" / "samples").mkdir()
    Image.new("RGB", (56, 28), (200, 30, 30)).save(root / "plots" / "samples" / "gan-colour-balanced-s0.png")
    params = write_params(root, compose("smoke", "factors=[colour]", "models=[gan,data-memorizer]"))
    report(
        ["--params", str(params), "--metrics", str(root / "metrics"), "--plots", str(root / "plots" / "train")]
        + ["--out", str(root / "reports" / "tables"), "--summary", str(root / "reports" / "summary.json")]
        + ["--plot-data", str(root / "reports" / "plots")]
    )
    return root, env


def test_every_chart_renders_offline(study, tmp_path):
    root, env = study
    found = assert_renders(plots_show(root, env), tmp_path)
    charts = {c["target"]: c for c in found["charts"]}
    terms = ("d_loss", "d_loss_k1_with", "d_loss_k1_without", "g_loss", "mode_seeking")
    # the train stage's DVCLive curves: one chart per run and term, the epoch along x
    curves = [f"#plots_train_gan-colour-s0_{d}_plots_metrics_{t}_tsv" for d in ("balanced", "skewed_k1") for t in terms]
    assert all("epoch" in charts[c]["text"] and charts[c]["rows"] == 3 for c in curves), [charts[c] for c in curves]
    assert sorted(charts) == [
        *sorted(curves),
        "#reports_plots_probe_gan-colour-s0-k1_csv",
        "#reports_plots_quality_csv",
        "#reports_plots_train_gan-colour-s0_csv",  # none for the control: it has no losses
        "#reports_plots_z_data-memorizer-colour-k1_csv",
        "#reports_plots_z_gan-colour-k1_csv",
    ]
    z = charts["#reports_plots_z_gan-colour-k1_csv"]
    assert "GAN · colour · k = 1: z per class" in z["text"] and "|z| = 1.96" in z["text"]
    assert "undefined: no samples" in z["text"]  # class 9 stays on the chart
    assert "learned" in z["text"] and "memorized" in z["text"]  # the verdicts' legend
    assert z["rows"] == 10
    train = charts["#reports_plots_train_gan-colour-s0_csv"]
    assert "GAN · colour" in train["text"] and "balanced" in train["text"] and "skewed_k1" in train["text"]
    probe = charts["#reports_plots_probe_gan-colour-s0-k1_csv"]
    assert "discriminator probe" in probe["text"] and "log 2" in probe["text"] and "skewed_k1" in probe["text"]
    assert len(found["images"]) == 1


def test_a_broken_chart_fails_the_check(study, tmp_path):
    """The check itself: a chart whose expression does not parse (as a quote
    in a label once broke the probe's) shows its error in its box and on the
    console, and assert_renders fails."""
    root, env = study
    losses = root / ".dvc" / "plots" / "losses.json"
    epoch = "toNumber(datum['<DVC_METRIC_X>'])"
    losses.write_text(losses.read_text().replace(epoch, epoch[:-1]))
    page = plots_show(root, env)
    found = render(page, require_browser_and_page(), tmp_path / "profile")
    broken = [c for c in found["charts"] if c["error"]]
    assert [c["target"] for c in broken] == ["#reports_plots_train_gan-colour-s0_csv"]
    assert any("reports_plots_train_gan-colour-s0_csv" in e for e in found["errors"])
    with pytest.raises(AssertionError):
        assert_renders(page, tmp_path)


if __name__ == "__main__":  # python -m tests.test_plots_render dvc_plots/index.html
    print(json.dumps(render(Path(sys.argv[1]), browser(), Path("/tmp/rgf-chromium-profile")), indent=1))
