"""The MLflow store before a study writes to it: a quick reachability check (seconds, not MLflow's minutes
of HTTP retries) and, for a SQLite file, its creation and schema migration under a file lock, so any number
of studies can start together against a new SQLite store (the default ``mlflow.db``).

Also the settings the study driver's HTTP client runs with (few retries, short timeout: an outage is
handled by the driver's own backlog, lwgan.tracking_backlog, instead of blocking it), and the test that
tells "the store is unreachable" from any other MLflow error.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, Mapping

from lwgan.errors import UserError, first_line

SQLITE_PREFIX = "sqlite:///"
# The reachability check: one try, a short timeout, no back-off. Worst case about 2 x timeout.
PREFLIGHT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "4",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0"}
# The driver during a study (set only where the user has not): a dead server costs ~1 s per try, a hung one 2 x 10 s.
DRIVER_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
              "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}  # an int
SQLITE_LOCK_TIMEOUT_S = 300.0
UNREACHABLE_MARKERS = ("failed with exception", "Max retries exceeded", "Connection refused", "ConnectionError",
                       "Read timed out", "RemoteDisconnected", "Connection aborted", "too many 5")


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then put back what was there."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def driver_http_settings() -> None:
    """Few retries for the study driver's MLflow calls, unless the user set them (its backlog retries instead)."""
    for key, value in DRIVER_ENV.items():
        os.environ.setdefault(key, value)


def is_unreachable(err: BaseException) -> bool:
    """True when ``err`` says the store could not be reached (connection refused or reset, timeout, 5xx),
    not that it refused the request (a bad parameter, a deleted run)."""
    try:
        import requests

        if isinstance(err, requests.RequestException):
            return True
    except ImportError:  # pragma: no cover - mlflow depends on requests
        pass
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    text = str(err)
    return any(marker in text for marker in UNREACHABLE_MARKERS)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:////abs/path.db`` URI; None for any other store."""
    return Path(uri[len(SQLITE_PREFIX):]) if uri.startswith(SQLITE_PREFIX) else None


def check_store(uri: str) -> None:
    """Open the store behind ``uri`` now, quickly, or raise UserError naming it.

    A SQLite file is created and migrated under ``<file>.lock`` (several studies may start at once);
    any other store (an HTTP server) gets one request with a short timeout."""
    from mlflow.tracking import MlflowClient

    db = sqlite_path(uri)
    try:
        if db is not None:
            from filelock import FileLock, Timeout

            db.parent.mkdir(parents=True, exist_ok=True)
            try:
                with FileLock(str(db) + ".lock", timeout=SQLITE_LOCK_TIMEOUT_S):
                    MlflowClient(tracking_uri=uri).search_experiments(max_results=1)  # creates + migrates the schema
            except Timeout:
                raise UserError(f"MLflow store {uri}: another process has held {db}.lock for {SQLITE_LOCK_TIMEOUT_S:.0f} s; "
                                f"if none is running, delete the lock file") from None
        else:
            with environment(PREFLIGHT_ENV):
                MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure here means the store cannot be used; say which
        first = first_line(err)
        how = ("start the server (or fix the address), or point MLFLOW_TRACKING_URI / mlflow.env at a store that is up"
               if db is None else "check the file and its folder are writable")
        raise UserError(f"MLflow store {uri} cannot be used: {first[:300]}; {how}. Nothing was started.") from None
