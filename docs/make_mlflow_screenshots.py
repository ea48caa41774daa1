"""Headless-Chromium screenshots of one study in the MLflow UI (compare view and runs table) for the README.

Needs a running UI (``lwgan-study ui --port 5077``) on the same MLFLOW_TRACKING_URI and the ``chromium``
binary. It drives Chromium over the DevTools protocol (through aiohttp's websocket client, already installed
with ray) because the MLflow SPA must be clicked: the Assistant side panel closed, "Show diff only" switched
on, the parent run expanded. The README images were made with (see docs/images/):

    lwgan-study run studies/ensembles.yaml --profile tiny --seeds 1 --no-report   # prints the parent run id
    lwgan-study ui --port 5077 &
    python docs/make_mlflow_screenshots.py --parent <parent run id> --out /tmp/shot --hide-sidebar

and writes compare.png (1600x1880) and runs.png (1680x520) under --out.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import aiohttp

# MLflow 3 opens an experiment without the mlflow.experimentKind tag in its GenAI (traces) mode; this query
# parameter selects the "Model training" mode, whose runs table and compare view show params and metrics.
MODEL_TRAINING = "workflowType=machine_learning"
CLOSE_ASSISTANT_JS = """(() => {
  const b = document.querySelector('[data-component-id="mlflow.assistant.chat_panel.close"]');
  if (b) { b.click(); return true; } return false; })()"""


def click_by_aria_label_js(label: str) -> str:
    return f"""(() => {{
  const b = document.querySelector('[aria-label={json.dumps(label)}]');
  if (b && b.getAttribute('aria-checked') !== 'true') {{ b.click(); return true; }} return false; }})()"""


def element_with_text_js(css: str, text: str) -> str:
    return f"[...document.querySelectorAll({json.dumps(css)})].find(e => e.textContent.trim() === {json.dumps(text)})"


async def choose_plot_axes(tools: "DevTools", params: list[str], metrics: list[str]) -> None:
    """Set the parallel-coordinates axes: Clear All, then type each name into the two multi-selects."""
    await tools.click(element_with_text_js("button", "Clear All"))
    for select_index, names in ((0, params), (1, metrics)):
        for name in names:
            selector = f"document.querySelectorAll('.du-bois-light-select-selector')[{select_index}]"
            await tools.click(selector)
            await tools.call("Input.insertText", text=name)
            await asyncio.sleep(0.6)
            if not await tools.click(element_with_text_js(".du-bois-light-select-item-option-content", name)):
                print(f"warning: no option {name!r} in the plot's select {select_index}")
        await tools.call("Input.dispatchKeyEvent", type="keyDown", key="Escape", code="Escape",
                         windowsVirtualKeyCode=27)
        await tools.call("Input.dispatchKeyEvent", type="keyUp", key="Escape", code="Escape",
                         windowsVirtualKeyCode=27)
        await asyncio.sleep(0.5)


def runs_table_state_js(experiment_id: str, parent_run_id: str, columns: list[str]) -> str:
    """JS that stores the runs-table view (columns shown, parent expanded) where MLflow 3 keeps it."""
    key = f'MLflowLocalStorage-1.1-ExperimentPage-["{experiment_id}"]-ReactComponentState'
    return f"""(() => {{ const key = {json.dumps(key)};
  const state = JSON.parse(localStorage.getItem(key) || '{{}}');
  state.selectedColumns = {json.dumps(columns)};
  state.runsExpanded = {{{json.dumps(parent_run_id)}: true}};
  // ag-grid column ids: "0" is the checkbox column; the grid only restores widths with a column order.
  state.columnOrder = ["0", "attributes.`Run Name`", "runDateAndNestInfo", "duration", ...{json.dumps(columns)}];
  state.columnWidths = Object.fromEntries({json.dumps(columns)}.map(c => [c, c.startsWith('metrics') ? 112 : 104]));
  localStorage.setItem(key, JSON.stringify(state)); return Object.keys(state).length; }})()"""


def study_runs(parent_run_id: str) -> tuple[str, str, list[tuple[str, str]]]:
    """(experiment id, parent run name, [(run name, run id)] of its child runs, baseline first, then by name)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    parent = client.get_run(parent_run_id).info
    children = client.search_runs([parent.experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'")
    named = [(run.info.run_name, run.info.run_id) for run in children]
    named.sort(key=lambda item: (not item[0].startswith("baseline"), item[0]))
    return parent.experiment_id, parent.run_name, named


def compare_url(ui: str, experiment_id: str, run_ids: list[str]) -> str:
    runs = urllib.parse.quote(json.dumps(run_ids, separators=(",", ":")))
    experiments = urllib.parse.quote(json.dumps([experiment_id]))
    return f"{ui}/#/compare-runs?runs={runs}&experiments={experiments}&{MODEL_TRAINING}"


class DevTools:
    """Minimal Chrome DevTools Protocol client over one page websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params):
        message_id = next(self.ids)
        await self.ws.send_json({"id": message_id, "method": method, "params": params})
        while True:
            reply = await self.ws.receive_json(timeout=60)
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not await self.evaluate(f"!!({expression})"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never satisfied {expression}")
            await asyncio.sleep(0.5)

    async def click(self, selector_js: str) -> bool:
        """A real mouse click (press and release) at the centre of the element selector_js returns."""
        box = await self.evaluate(f"""(() => {{ const e = {selector_js};
            if (!e) return null; e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        if box is None:
            return False
        for kind in ("mousePressed", "mouseReleased"):
            await self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)
        await asyncio.sleep(0.4)
        return True

    async def screenshot(self, path: Path, width: int, height: int) -> None:
        shot = await self.call(
            "Page.captureScreenshot", format="png",
            clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        )
        path.write_bytes(base64.b64decode(shot["data"]))


def launch_chromium(profile_dir: str) -> subprocess.Popen:
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if binary is None:
        raise SystemExit("no chromium on PATH (Debian: apt-get install chromium)")
    flags = [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile_dir}", "--remote-debugging-port=0", "about:blank",
    ]
    return subprocess.Popen([binary, *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def page_websocket_url(profile_dir: str) -> str:
    port_file = Path(profile_dir) / "DevToolsActivePort"
    for _ in range(100):
        if port_file.exists() and port_file.read_text().strip():
            break
        await asyncio.sleep(0.1)
    port = port_file.read_text().split()[0]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json(content_type=None)
    return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")


async def open_page(tools: DevTools, url: str, width: int, height: int, ready: str) -> None:
    await tools.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                     deviceScaleFactor=1, mobile=False)
    await tools.call("Page.enable")
    await tools.call("Page.navigate", url=url)
    try:
        await tools.wait_for(ready)
    except TimeoutError:
        await tools.screenshot(Path(tempfile.gettempdir()) / "mlflow_timeout.png", width, height)
        raise
    await asyncio.sleep(1.5)
    await tools.evaluate(CLOSE_ASSISTANT_JS)
    await asyncio.sleep(1.0)


async def capture(args: argparse.Namespace) -> None:
    experiment_id, parent_name, runs = study_runs(args.parent)
    print("runs:", ", ".join(name for name, _ in runs))
    profile_dir = tempfile.mkdtemp(prefix="lwgan-shot-")
    browser = launch_chromium(profile_dir)
    try:
        ws_url = await page_websocket_url(profile_dir)
        async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, max_msg_size=0) as ws:
            tools = DevTools(ws)
            url = compare_url(args.ui, experiment_id, [run_id for _, run_id in runs])
            print("compare:", url)
            await open_page(tools, url, args.width, args.compare_height,
                            "document.querySelector('[aria-label=\"Parameters - Show diff only\"]')")
            await tools.evaluate(click_by_aria_label_js("Parameters - Show diff only"))
            await asyncio.sleep(1.0)
            if args.plot_params or args.plot_metrics:
                await choose_plot_axes(tools, args.plot_params, args.plot_metrics)
                await tools.call("Input.dispatchMouseEvent", type="mouseMoved", x=args.width - 5, y=5)
                await tools.evaluate("document.activeElement && document.activeElement.blur();"
                                     " document.querySelectorAll('*').forEach(e => e.scrollTop = 0)")
                await asyncio.sleep(1.0)
            for js in args.compare_js:
                print("js ->", await tools.evaluate(js))
                await asyncio.sleep(1.0)
            await tools.screenshot(args.out / "compare.png", args.width, args.compare_height)

            order = urllib.parse.quote(args.table_order)
            url = f"{args.ui}/#/experiments/{experiment_id}/runs?{MODEL_TRAINING}&orderByKey={order}&orderByAsc=true"
            print("runs table:", url)
            await open_page(tools, url, args.runs_width, args.runs_height,
                            f"document.body.innerText.includes({json.dumps(parent_name)})")
            columns = [f"params.`{name}`" for name in args.table_params]
            columns += [f"metrics.`{name}`" for name in args.table_metrics]
            print("js ->", await tools.evaluate(runs_table_state_js(experiment_id, args.parent, columns)))
            await tools.call("Page.reload")
            await tools.wait_for(f"document.body.innerText.includes({json.dumps(runs[0][0])})")
            await asyncio.sleep(1.5)
            if args.hide_sidebar:
                await tools.click("document.querySelector('[aria-label=\"Toggle sidebar\"]')")
                await asyncio.sleep(1.0)
            for js in args.runs_js:
                print("js ->", await tools.evaluate(js))
                await asyncio.sleep(1.0)
            await tools.screenshot(args.out / "runs.png", args.runs_width, args.runs_height)
    finally:
        browser.terminate()
        browser.wait(timeout=10)
        shutil.rmtree(profile_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parent", required=True, help="the study's parent MLflow run id")
    parser.add_argument("--ui", default="http://127.0.0.1:5077")
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--compare-height", type=int, default=1880, help="1880 px ends above the Artifacts section")
    parser.add_argument("--runs-width", type=int, default=1680)
    parser.add_argument("--runs-height", type=int, default=520)
    parser.add_argument("--plot-params", nargs="*", default=["lr_G", "lr_D", "gp_weight", "lambda_rec", "epochs_decay"])
    parser.add_argument("--plot-metrics", nargs="*", default=["eval/ssim"])
    parser.add_argument("--table-params", nargs="*",
                        default=["lr_G", "lr_D", "gp_weight", "spectral_norm", "lambda_rec", "epochs_decay"])
    parser.add_argument("--table-metrics", nargs="*", default=["eval/ssim", "loss/G_face", "loss/G_tsf", "loss/G_rec"])
    # Sorting by run name flattens the parent/child nesting, so the table keeps MLflow's start-time sort.
    parser.add_argument("--table-order", default="attributes.start_time")
    parser.add_argument("--hide-sidebar", action="store_true", help="collapse MLflow's sidebar for the runs table")
    parser.add_argument("--compare-js", action="append", default=[], help="extra JS to run before the shot")
    parser.add_argument("--runs-js", action="append", default=[], help="extra JS to run before the shot")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(capture(args))


if __name__ == "__main__":
    main()
