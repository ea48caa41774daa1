"""MLflow writes that survive the store going away during a study.

``BufferedClient`` wraps the driver's ``MlflowClient``: a write that fails because the store cannot be
reached is appended to ``tracking_backlog.jsonl`` in the study's run folder, and so is every write after
it (order kept) until the store answers again. Training goes on; the backlog is retried with back-off on
later writes and flushed in order when the store is back (``--resume`` flushes what is left). A run
created while the store was down gets a placeholder id (``offline-...``) that the flush maps to the real
run id (kept in ``tracking_ids.json``, so a state file holding a placeholder still resolves).

Replays are safe to repeat: metric points carry their original timestamp (MLflow keeps one copy of an
identical point), tags and statuses are idempotent, and the count of replayed records is saved after each.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from lwgan.errors import first_line
from lwgan.fsutil import write_text_atomic
from lwgan.store import is_unreachable

BACKLOG_FILE = "tracking_backlog.jsonl"
IDS_FILE = "tracking_ids.json"
PLACEHOLDER = "offline-"
RETRY_DELAYS_S = (2.0, 5.0, 10.0, 20.0, 40.0, 60.0)  # back-off between tries while the store is down


def _encode(value: Any) -> Any:
    """MLflow entities (Metric, Param, RunTag) as plain JSON."""
    from mlflow.entities import Metric, Param, RunTag

    if isinstance(value, Metric):
        return {"__metric__": [value.key, value.value, value.timestamp, value.step]}
    if isinstance(value, Param):
        return {"__param__": [value.key, value.value]}
    if isinstance(value, RunTag):
        return {"__tag__": [value.key, value.value]}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def _decode(value: Any) -> Any:
    from mlflow.entities import Metric, Param, RunTag

    if isinstance(value, dict):
        if "__metric__" in value:
            key, val, ts, step = value["__metric__"]
            return Metric(key, float(val), int(ts), int(step))
        if "__param__" in value:
            return Param(*value["__param__"])
        if "__tag__" in value:
            return RunTag(*value["__tag__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


class _OfflineRun:
    """What ``create_run`` returns while the store is down: ``.info.run_id`` is a placeholder."""

    class _Info:
        def __init__(self, run_id: str):
            self.run_id = run_id

    def __init__(self, run_id: str):
        self.info = self._Info(run_id)


class BufferedClient:
    """An ``MlflowClient`` whose writes are kept on disk while the store cannot be reached; reads pass through."""

    WRITES = ("create_run", "log_batch", "set_tag", "update_run", "set_terminated", "log_artifact", "log_artifacts", "log_text")

    def __init__(self, client, folder: Path, notify: Callable[[str], None] | None = None, uri: str = "",
                 clock: Callable[[], float] = time.monotonic):
        self._client = client
        self.folder = Path(folder)
        self.backlog = self.folder / BACKLOG_FILE
        self.ids_file = self.folder / IDS_FILE
        self._notify = notify or (lambda text: None)
        self._uri = uri
        self._clock = clock
        self.ids: dict[str, str] = {}
        self._replayed = 0
        self._load_ids()
        self._failures = 0
        self._next_try = 0.0
        self._told = False
        self.buffered_total = 0
        self.flushed_total = 0

    # -- reads and anything not wrapped go straight to MLflow --------------------------
    def __getattr__(self, name: str):
        return getattr(self._client, name)

    def resolve(self, run_id: str | None) -> str | None:
        """The real run id of a placeholder (itself once flushed; unchanged for a real id)."""
        return self.ids.get(run_id, run_id) if run_id else run_id

    def pending(self) -> int:
        """How many writes wait in the backlog."""
        if not self.backlog.is_file():
            return 0
        self._load_ids()
        return max(0, sum(1 for line in self.backlog.read_text().splitlines() if line.strip()) - self._replayed)

    # -- the wrapped writes ------------------------------------------------------------
    def create_run(self, experiment_id: str, run_name: str | None = None, tags: dict | None = None):
        placeholder = PLACEHOLDER + uuid.uuid4().hex
        record = {"op": "create_run", "args": [experiment_id], "kwargs": {"run_name": run_name, "tags": tags or {}},
                  "placeholder": placeholder}
        result = self._write(record)
        return result if result is not None else _OfflineRun(placeholder)

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        self._write({"op": "log_batch", "args": [run_id],
                     "kwargs": {"metrics": list(metrics), "params": list(params), "tags": list(tags)}})

    def set_tag(self, run_id, key, value):
        self._write({"op": "set_tag", "args": [run_id, key, value], "kwargs": {}})

    def update_run(self, run_id, status=None, name=None):
        self._write({"op": "update_run", "args": [run_id], "kwargs": {"status": status, "name": name}})

    def set_terminated(self, run_id, status=None, end_time=None):
        self._write({"op": "set_terminated", "args": [run_id], "kwargs": {"status": status, "end_time": end_time}})

    def log_artifact(self, run_id, local_path, artifact_path=None):
        self._write({"op": "log_artifact", "args": [run_id, str(local_path)], "kwargs": {"artifact_path": artifact_path}})

    def log_artifacts(self, run_id, local_dir, artifact_path=None):
        self._write({"op": "log_artifacts", "args": [run_id, str(local_dir)], "kwargs": {"artifact_path": artifact_path}})

    def log_text(self, run_id, text, artifact_file):
        self._write({"op": "log_text", "args": [run_id, text, artifact_file], "kwargs": {}})

    # -- the machinery -----------------------------------------------------------------
    def flush(self, force: bool = False) -> bool:
        """Send the backlog in order; True when it is empty afterwards. Without ``force`` only when the back-off allows."""
        if not self.pending():
            return True
        if not force and self._clock() < self._next_try:
            return False
        lines = [ln for ln in self.backlog.read_text().splitlines() if ln.strip()]
        for index in range(self._replayed, len(lines)):
            record = json.loads(lines[index])
            try:
                self._send(record)
            except Exception as err:  # noqa: BLE001 - classified below
                if not is_unreachable(err):
                    raise
                self._down(err)
                return False
            self._replayed = index + 1
            self._save_ids()
        sent = len(lines)
        self.backlog.unlink()
        self._replayed = 0
        self._save_ids()
        self.flushed_total += sent
        self._failures = 0
        if self._told:
            self._notify(f"MLflow store {self._uri} is back: {sent} buffered tracking writes sent")
            self._told = False
        return True

    def _write(self, record: dict[str, Any]):
        if self.pending() and not self.flush():
            self._append(record)
            return None
        try:
            return self._send(record)
        except Exception as err:  # noqa: BLE001 - classified below
            if not is_unreachable(err):
                raise
            self._down(err)
            self._append(record)
            return None

    def _send(self, record: dict[str, Any]):
        args = [self.resolve(a) if i == 0 and isinstance(a, str) else a for i, a in enumerate(_decode(record["args"]))]
        if record["op"] == "create_run":
            args = list(_decode(record["args"]))
        kwargs = _decode(record["kwargs"])
        result = getattr(self._client, record["op"])(*args, **kwargs)
        if record["op"] == "create_run" and record.get("placeholder"):
            self.ids[record["placeholder"]] = result.info.run_id
            self._save_ids()
        return result

    def _append(self, record: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.backlog.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(_encode(record)) + "\n")
            fh.flush()
        self.buffered_total += 1

    def _down(self, err: BaseException) -> None:
        self._next_try = self._clock() + RETRY_DELAYS_S[min(self._failures, len(RETRY_DELAYS_S) - 1)]
        self._failures += 1
        if not self._told:
            first = first_line(err)[:160]
            self._notify(f"MLflow store {self._uri} is unreachable ({first}); training goes on and tracking writes are "
                         f"kept in {self.backlog}, sent when the store is back (retrying with back-off; --resume sends what is left)")
            self._told = True

    def _load_ids(self) -> None:
        """Placeholder ids and the replay count from disk (another client on this folder may have flushed)."""
        saved = json.loads(self.ids_file.read_text()) if self.ids_file.is_file() else {}
        self.ids.update(saved.get("ids", {}))
        self._replayed = int(saved.get("replayed", 0))

    def _save_ids(self) -> None:
        write_text_atomic(self.ids_file, json.dumps({"ids": self.ids, "replayed": self._replayed}, indent=1))
