"""Headless-Chromium screenshots of one study in the MLflow UI (compare view and runs table) for the README.

Needs a running UI (``lwgan-study ui --port 5077``) on the same MLFLOW_TRACKING_URI and the ``chromium``
binary. It drives Chromium over the DevTools protocol (through aiohttp's websocket client, already installed
with ray) because the MLflow SPA must be clicked: the Assistant side panel closed, "Show diff only" switched
on, the parent run expanded. The README images (docs/images/mlflow_compare.png, mlflow_runs.png) were made
from the default small-profile ensembles study (15 trials: baseline and E1-E4, 3 seeds each) with:

    make study                     # = lwgan-study run: prints "MLflow: parent run <id>" (or: lwgan-study ls)
    lwgan-study ui --port 5077 &
    python docs/make_mlflow_screenshots.py --parent <parent run id> --out /tmp/shot --hide-sidebar
    kill %1
    cp /tmp/shot/compare.png docs/images/mlflow_compare.png; cp /tmp/shot/runs.png docs/images/mlflow_runs.png

and writes under --out compare.png (1600 wide; the parallel-coordinates plot, run details, the params that
differ, and the Metrics rows --metric-rows, by default all loss/* rows loss/D_fake..loss/G_tsf, cropped
just below them) and runs.png (1680 wide; the parent expanded over all its child runs, as tall as the
table). The compare view takes the runs matching --compare-runs (default seed 0 of each variant: MLflow
gives each compared run a column of at least 200 px, so 15 would not fit a readable width).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import re
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


def study_runs(parent_run_id: str) -> tuple[str, str, list[tuple[str, str, list[str]]]]:
    """(experiment id, parent run name, [(run name, run id, metric keys)] of its child runs, baseline first,
    then by name)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    parent = client.get_run(parent_run_id).info
    children = client.search_runs([parent.experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'",
                                  max_results=1000)
    named = [(run.info.run_name, run.info.run_id, list(run.data.metrics)) for run in children]
    named.sort(key=lambda item: (not item[0].startswith("baseline"), item[0]))
    return parent.experiment_id, parent.run_name, named


# The compare view's Metrics table is a react-virtualized grid (names column + values grid, rows 45 px) in a
# fixed 300 px window, so it shows ~6.7 rows and renders only those plus up to 10 rows of overscan below.
# To show a block of up to ~16 rows (the losses): the values grid is scrolled to the block's first row,
# then the names grid (it does not follow a programmatic scroll), then both windows are made as tall as
# the block, so the rows already rendered by the overscan appear; nothing is re-drawn or re-ordered.
METRIC_ROW_PX = 45


def show_metric_rows_js(first_row: int, row_count: int, expected_first: str) -> str:
    return f"""(async () => {{
  const grids = [...document.querySelectorAll('.ReactVirtualized__Grid')];
  if (grids.length < 2) return 'no metric grids';
  const values = grids.find(g => getComputedStyle(g).overflowY !== 'hidden') || grids[1];
  values.scrollTop = {first_row * METRIC_ROW_PX};
  await new Promise(r => setTimeout(r, 1000));
  // The values grid's scroll handler resets the names grid (to a stale 0): scroll that one afterwards.
  for (const g of grids) if (g !== values) g.scrollTop = {first_row * METRIC_ROW_PX};
  await new Promise(r => setTimeout(r, 1000));
  const height = '{row_count * METRIC_ROW_PX}px';
  for (const g of grids) {{ g.style.height = height; g.style.maxHeight = height; }}
  await new Promise(r => setTimeout(r, 800));
  const box = grids[0].getBoundingClientRect();
  const names = [...grids[0].firstElementChild.children]
    .map(c => [c.getBoundingClientRect().top, c.textContent.trim()])
    .filter(([top]) => top >= box.top - 1 && top < box.bottom - 1).sort((a, b) => a[0] - b[0]);
  if (!names.length || names[0][1] !== {json.dumps(expected_first)}) return 'first metric row: ' + (names[0] || [])[1];
  if (names.length !== {row_count}) return names.length + ' of {row_count} metric rows rendered';
  return Math.ceil(values.getBoundingClientRect().bottom + window.scrollY);
}})()"""


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
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
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
    print("runs:", ", ".join(name for name, _, _ in runs))
    compared = [run for run in runs if re.search(args.compare_runs, run[0])]
    if not compared:
        raise SystemExit(f"no child run name matches --compare-runs {args.compare_runs!r}")
    print("compared:", ", ".join(name for name, _, _ in compared))
    metric_keys = sorted({key for _, _, keys in compared for key in keys})  # the compare view's row order
    first_metric, last_metric = args.metric_rows
    if first_metric not in metric_keys or last_metric not in metric_keys:
        raise SystemExit(f"--metric-rows {first_metric} {last_metric}: not among the compared runs' metrics")
    first_row = metric_keys.index(first_metric)
    row_count = metric_keys.index(last_metric) - first_row + 1
    print("metric rows:", ", ".join(metric_keys[first_row:first_row + row_count]))
    profile_dir = tempfile.mkdtemp(prefix="lwgan-shot-")
    browser = launch_chromium(profile_dir)
    try:
        ws_url = await page_websocket_url(profile_dir)
        async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, max_msg_size=0) as ws:
            tools = DevTools(ws)
            url = compare_url(args.ui, experiment_id, [run_id for _, run_id, _ in compared])
            print("compare:", url)
            await open_page(tools, url, args.width, args.compare_viewport,
                            "document.querySelector('[aria-label=\"Parameters - Show diff only\"]')")
            await tools.evaluate(click_by_aria_label_js("Parameters - Show diff only"))
            await asyncio.sleep(1.0)
            if args.plot_params or args.plot_metrics:
                await choose_plot_axes(tools, args.plot_params, args.plot_metrics)
                await tools.call("Input.dispatchMouseEvent", type="mouseMoved", x=args.width - 5, y=5)
                await tools.evaluate("document.activeElement && document.activeElement.blur();"
                                     " document.querySelectorAll('*').forEach(e => e.scrollTop = 0)")
                await asyncio.sleep(1.0)
            bottom = await tools.evaluate(show_metric_rows_js(first_row, row_count, first_metric))
            if not isinstance(bottom, (int, float)):
                raise RuntimeError(f"could not show the metric rows {first_metric}..{last_metric}: {bottom}")
            for js in args.compare_js:
                print("js ->", await tools.evaluate(js))
                await asyncio.sleep(1.0)
            height = args.compare_height or min(int(bottom) + 24, args.compare_viewport)
            print("compare shot height:", height)
            await tools.screenshot(args.out / "compare.png", args.width, height)

            order = urllib.parse.quote(args.table_order)
            url = f"{args.ui}/#/experiments/{experiment_id}/runs?{MODEL_TRAINING}&orderByKey={order}&orderByAsc=true"
            print("runs table:", url)
            await open_page(tools, url, args.runs_width, args.runs_height or 1400,
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
            runs_height = args.runs_height
            if not runs_height:
                # As tall as the expanded table (parent + children) plus the "N matching runs" footer.
                rows_bottom = await tools.evaluate(
                    "Math.max(...[...document.querySelectorAll('.ag-row')].map(r => r.getBoundingClientRect().bottom))")
                runs_height = int(rows_bottom) + args.runs_footer
                await tools.call("Emulation.setDeviceMetricsOverride", width=args.runs_width, height=runs_height,
                                 deviceScaleFactor=1, mobile=False)
                await asyncio.sleep(1.5)
            print("runs shot height:", runs_height)
            await tools.screenshot(args.out / "runs.png", args.runs_width, runs_height)
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
    parser.add_argument("--compare-runs", default=r"-s0$",
                        help="regex on child run names: the runs compared (default: seed 0 of each variant; "
                             "MLflow gives each compared run a column of at least 200 px)")
    parser.add_argument("--metric-rows", nargs=2, metavar=("FIRST", "LAST"), default=["loss/D_fake", "loss/G_tsf"],
                        help="the block of Metrics rows shown, first and last in MLflow's (alphabetical) order")
    parser.add_argument("--compare-viewport", type=int, default=2600, help="viewport height while the page is set up")
    parser.add_argument("--compare-height", type=int, default=0, help="0: crop just below the metric rows shown")
    parser.add_argument("--runs-width", type=int, default=1680)
    parser.add_argument("--runs-height", type=int, default=0, help="0: fit the expanded table")
    parser.add_argument("--runs-footer", type=int, default=80, help="px kept below the table's last row")
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
