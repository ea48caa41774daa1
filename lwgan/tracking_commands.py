"""``lwgan-study ui``: the MLflow UI against the project's store (the one ``lwgan-study run`` writes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from lwgan.errors import UserError
from lwgan.tracking import tracking_uri


def ui_command(uri: str, port: int, host: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
            "--host", host, "--port", str(port), "--workers", "1"]


def command_ui(args) -> int:
    """Start ``mlflow ui`` (on 127.0.0.1 unless ``--host``) against the project's store (blocks until Ctrl-C)."""
    uri = tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise UserError(f"no MLflow store at {uri} yet: run a study first (lwgan-study run), or set MLFLOW_TRACKING_URI")
    port = int(getattr(args, "port", 5000))
    host = str(getattr(args, "host", None) or "127.0.0.1")
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    print(f"MLflow UI for {uri} at http://{host}:{port}/#/experiments?workflowType=machine_learning (Ctrl-C to stop)",
          file=sys.stderr, flush=True)
    # Its own process group, ended as a whole on any exit (Ctrl-C, SIGTERM): mlflow's uvicorn
    # worker would otherwise outlive us and keep the port.
    proc = subprocess.Popen(ui_command(uri, port, host), env=env, start_new_session=True)
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
