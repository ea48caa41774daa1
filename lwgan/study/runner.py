"""Runs a resolved study on Ray Tune: explicit trials for ablations, OptunaSearch + ASHA for searches,
one MLflow writer (the driver's monitor callback), a state file for --resume, and the end-of-study
summary and report."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, TextIO

from lwgan.errors import DiskFullError, UserError, first_line
from lwgan.fsutil import SQLITE_FULL, free_mib, is_no_space
from lwgan.store import driver_http_settings, sqlite_path
from lwgan.study.ray_procs import record_ray_processes, stop_leftover_ray
from lwgan.study.outcome import TrialOutcome, record_outcome
from lwgan.study.packing import Packing, pack_trials
from lwgan.study.spec import ResolvedStudy
from lwgan.study.state import STATE_FILE, StudyState, TrialRecord, latest_run_dir
from lwgan.study.trainable import DEFAULT_TRAINER, CrashSpec, TrialContext
from lwgan.vocab import FINAL_STATUSES, TrialStatus, TuneKey

TUNE_NAME = "tune"
# In the run folder, for one invocation (removed when it ends): what its trials share per frame, as
# config key -> sub-folder (target features: lwgan.models.feature_store; correspondences: lwgan.render.cache).
FRAME_CACHES = "frame_caches"
SHARED_FRAME_CACHES = {"target_cache_dir": "target_features", "correspondence_cache_dir": "correspondences"}


@dataclass
class RunOptions:
    storage: Path  # <storage>/<study>/run-<time>/ holds the state file, trial folders and Ray's results
    resume: bool = False
    resume_dir: Path | None = None  # the run folder to resume (--resume RUN_ID); None = the study's latest run
    address: str | None = None  # Ray cluster address; None = $RAY_ADDRESS, else a local Ray
    max_concurrent: int | None = None
    report: bool = True
    max_failures: int = 2  # retries of a crashed trial (from its checkpoint) before it counts as failed
    report_every_s: float = 30.0  # progress reports to Tune between checkpoints (lwgan.study.trainable.TuneReporter)
    trainer: str = DEFAULT_TRAINER
    crashes: tuple[CrashSpec, ...] = ()  # test hook: $LWGAN_STUDY_INJECT_CRASH
    stream: TextIO | None = None
    tracking_uri: str | None = None
    report_dir: Path | None = None
    prepare_data: bool = True  # make the synthetic dataset in the driver before trials start (no racing trials)


@dataclass
class StudyOutcome:
    run_dir: Path
    parent_run_id: str
    counts: dict[str, int]
    best: tuple[str, float] | None
    finished: bool
    report_paths: list[Path] = field(default_factory=list)
    report_error: str | None = None


def _quiet_environment() -> None:
    """Ray's own output off (STACK_NOTES): the user sees the study's progress view instead."""
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # A trial reports its objective once it has one (after its first eval); earlier reports carry history only.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    for name in ("ray", "ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _ray_temp_dir() -> str:
    # Ray's socket paths must stay under ~107 characters: a short folder, not the storage path.
    return f"/tmp/lwgan-ray-{os.getuid()}"


def start_ray(address: str | None, num_cpus: int, num_gpus: float) -> bool:
    """Connect to ``address`` / $RAY_ADDRESS or start a local Ray; returns True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    common = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING, configure_logging=True)
    if address:
        try:
            ray.init(address=address, **common)
        except Exception as err:  # noqa: BLE001 - any connection failure is the user's address or token
            raise UserError(
                f"cannot connect to the Ray cluster at {address!r} ({first_line(err)}); "
                "check the address and the cluster's token (RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH, see README)"
            ) from None
    else:
        # A local Ray we start turns token auth on itself and says so in a warning the user cannot act on.
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus or None, _temp_dir=_ray_temp_dir(), **common)
    return True


def _cluster_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 1))


def new_run_dir(study_root: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = study_root / f"run-{stamp}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = study_root / f"run-{stamp}-{n}"
    return run_dir


def open_state(resolved: ResolvedStudy, options: RunOptions) -> StudyState:
    """The state of a new run, or of the latest run when resuming (profile must match)."""
    spec = resolved.spec
    study_root = (options.storage / spec.name).resolve()
    if options.resume:
        run_dir = options.resume_dir or latest_run_dir(study_root)
        if run_dir is None:
            raise UserError(f"nothing to resume: no run of study {spec.name!r} under {study_root} (start it without --resume)")
        state = StudyState.load(run_dir / STATE_FILE)
        if state.profile != resolved.profile:
            raise UserError(f"{run_dir / STATE_FILE}: the run to resume used profile {state.profile!r}, not {resolved.profile!r} "
                            f"(pass --profile {state.profile})")
        return state
    run_dir = new_run_dir(study_root)
    state = StudyState(run_dir / STATE_FILE, spec.name, spec.source, resolved.profile, spec.kind)
    for plan in resolved.trials:
        state.add(TrialRecord(plan.trial_id, plan.variant, plan.seed))
    state.save()
    return state


class SearchNamer:
    """``trial-000``, ``trial-001``, ... in creation order (the baseline is trial-000), kept in a file next
    to the state: Tune copies its config (and this object with it), and a resumed search continues the count."""

    def __init__(self, path: Path, start: int):
        self.path = Path(path)
        self.start = start

    def _names(self) -> dict[str, str]:
        import json

        return json.loads(self.path.read_text()) if self.path.is_file() else {}

    def __call__(self, trial) -> str:
        import json

        names = self._names()
        if trial.trial_id not in names:
            names[trial.trial_id] = f"trial-{self.start + len(names):03d}"
            from lwgan.fsutil import write_text_atomic

            write_text_atomic(self.path, json.dumps(names))
        return names[trial.trial_id]

    def dirname(self, trial) -> str:
        return self(trial)


def ablation_name(trial) -> str:
    return str(trial.config["trial_id"])


def run_study(resolved: ResolvedStudy, options: RunOptions) -> StudyOutcome:
    """Run (or resume) the study; returns its outcome. Ctrl-C or SIGTERM ends it early with ``finished=False``."""
    _quiet_environment()
    driver_http_settings()
    with sigterm_as_interrupt():
        try:
            return _run_study(resolved, options)
        except UserError:
            raise
        except Exception as err:
            if not is_no_space(err):
                raise
            from lwgan.tracking import tracking_uri

            raise driver_out_of_space(err, options.storage, options.tracking_uri or tracking_uri()) from err


def driver_out_of_space(err: BaseException, folder: Path, store_uri: str | None) -> DiskFullError:
    """What the study driver could not write for want of space (the file the OS named; else the SQLite
    store when SQLite said so; else the study's files under ``folder``), and the room left there. The
    one message for it, from the monitor's hooks during the trials and from ``run_study`` around them."""
    db = sqlite_path(store_uri) if store_uri else None
    filename = getattr(err, "filename", None)
    if filename:
        what, where = f"{filename}", Path(filename)
    elif db is not None and SQLITE_FULL in str(err):
        what, where = f"the MLflow store {db}", db
    else:
        what, where = f"the study's files under {folder}", Path(folder)
    free = free_mib(where)
    room = f"its disk has {free:.0f} MiB free" if free is not None else "its disk is full"
    return DiskFullError(f"the study driver cannot write {what}: {room} ({type(err).__name__}: {first_line(err).strip()})")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (Slurm, Kubernetes, ``kill``) ends the study as Ctrl-C does: the driver sends itself SIGINT,
    which Tune turns into a clean stop (state saved, resumable) and the CLI into exit code 130."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    _forward_sigterm()
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _sigterm_to_sigint(signum, frame) -> None:
    os.kill(os.getpid(), signal.SIGINT)


def _forward_sigterm() -> None:
    """SIGTERM -> SIGINT from now on (main thread only). Called again after ``ray.init``: Ray's core worker
    installs its own SIGTERM handler in the driver, which aborts the process without saving anything."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm_to_sigint)


def _run_study(resolved: ResolvedStudy, options: RunOptions) -> StudyOutcome:
    from lwgan.study.progress import StudyProgress
    from lwgan.tracking import StudyTracker, study_run_tags
    from lwgan.train.run_info import git_commit, package_versions

    spec = resolved.spec
    progress = StudyProgress(options.stream)
    tracker = StudyTracker(options.tracking_uri)  # the store is checked before anything is created or started
    state = open_state(resolved, options)
    run_dir = state.path.parent
    trials_dir = run_dir / "trials"
    trials_dir.mkdir(parents=True, exist_ok=True)
    tracker.buffer_in(run_dir, progress.line)  # a store that goes away mid-study loses nothing
    if options.resume:
        stopped = stop_leftover_ray(run_dir)
        if stopped:
            progress.line(f"stopped {stopped} Ray processes that the killed driver of this run had left running")

    versions = {**package_versions(), **_stack_versions()}
    tags = study_run_tags(spec.source, resolved.profile, resolved.baseline, versions, git_commit())
    raw_yaml = _study_yaml(spec)
    state.parent_run_id = tracker.start_study(spec.name, tags, raw_yaml, state.parent_run_id)
    moved = state.reset_interrupted()
    state.save()
    if options.resume:
        done = sum(1 for r in state.trials.values() if r.state in FINAL_STATUSES)
        progress.line(f"resuming {run_dir}: {done} trials finished are kept"
                      + (f"; {len(moved)} interrupted trials continue from their checkpoints" if moved else ""))

    needs_tune = spec.kind == "search" or bool(state.unfinished())
    if needs_tune and options.prepare_data:
        prepare_synthetic_data(resolved, progress)
    interrupted = False
    if needs_tune:
        interrupted = _run_tune(resolved, options, state, tracker, trials_dir, progress)
        state = StudyState.load(state.path)  # the monitor wrote it during the run
    finished = not interrupted and not state.unfinished()
    state.finished = finished
    state.save()
    counts = state.counts()
    best = state.best(spec.objective.mode)
    tracker.end_study(state.parent_run_id, counts, finished,
                      {"trial_id": best[0], "value": best[1]} if best else None)
    outcome = StudyOutcome(run_dir, state.parent_run_id, counts, best, finished)
    if not tracker.client.flush(force=True):
        outcome.report_error = (f"MLflow store {tracker.uri} is still unreachable: {tracker.client.pending()} tracking writes wait in "
                                f"{tracker.client.backlog}; when it is back, run the same command with --resume (nothing reruns)")
        progress.line(outcome.report_error)
    elif finished and options.report:
        _build_report(outcome, spec.name, tracker, options, progress)
    return outcome


def prepare_synthetic_data(resolved: ResolvedStudy, progress) -> None:
    """Generate (or find in the cache) each synthetic dataset the trials use, once, here in the driver:
    trials starting together would otherwise all generate it. Real datasets are left alone."""
    from lwgan.config import TrainConfig
    from lwgan.data import ensure_synthetic_dataset

    configs = [t.config for t in resolved.trials] or [resolved.baseline]
    data_cfgs = {TrainConfig.from_flat(c).data for c in configs if not c.get("data_root")}
    for data_cfg in data_cfgs:
        started = time.monotonic()
        path = ensure_synthetic_dataset(data_cfg)
        took = time.monotonic() - started
        if took > 1:
            progress.line(f"synthetic dataset ready in {took:.0f} s: {path}")


def _stack_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("ray", "mlflow", "optuna"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _study_yaml(spec) -> str:
    import yaml

    source = Path(spec.source)
    return source.read_text() if source.is_file() else yaml.safe_dump(spec.raw, sort_keys=False)


def _run_tune(resolved: ResolvedStudy, options: RunOptions, state: StudyState, tracker, trials_dir: Path, progress) -> bool:
    """Run the unfinished trials through a Tuner; returns True when the study was interrupted (Ctrl-C)."""
    import ray
    from ray import tune

    from lwgan.study.monitor import StudyMonitor
    from lwgan.study.trainable import run_trial

    spec = resolved.spec
    cpu, gpu = spec.resources.cpu, spec.resources.gpu
    local_cpus = os.cpu_count() or 1
    wanted = options.max_concurrent or max(1, int(local_cpus // cpu))
    started_ray = start_ray(options.address, max(local_cpus, int(wanted * cpu)), gpu * wanted)
    if started_ray:
        record_ray_processes(state.path.parent)  # so a --resume after kill -9 of this driver can stop them
    _forward_sigterm()  # over Ray's; run_study puts back the original handler at the end
    try:
        concurrency = options.max_concurrent or max(1, int(_cluster_cpus() // cpu))
        plans = {p.trial_id: p.config for p in resolved.trials}
        local = started_ray and not (options.address or os.environ.get("RAY_ADDRESS"))
        context = TrialContext(
            trials_dir=str(trials_dir.resolve()),
            baseline=dict(resolved.baseline),
            plans=plans,
            objective_metric=spec.objective.metric,
            objective_mode=spec.objective.mode,
            threads=max(1, int(cpu)),
            report_every_s=options.report_every_s,
            tune_checkpoints=not local,  # one machine: each trial resumes from its own folder
            profile=resolved.profile,
            crashes=options.crashes,
            trainer=options.trainer,
            frame_caches=fresh_frame_caches(state.path.parent),
        )
        pending = [r.trial_id for r in state.unfinished()]
        packing = pack_trials(pending, concurrency, cpu, may_share=(
            spec.kind == "ablation" and local and options.max_concurrent is None and cpu <= 1 and not gpu))
        trainable = tune.with_resources(tune.with_parameters(run_trial, context=context), _trial_resources(packing, cpu, gpu))
        total = len(resolved.trials) if spec.kind == "ablation" else (spec.budget.max_trials or 16)
        monitor = StudyMonitor(state.path, tracker.uri, tracker.experiment, context, spec.objective, concurrency, total,
                               spec.budget.time_budget_s, options.stream)
        monitor.use_tracker(tracker)  # one writer, one backlog
        run_config = tune.RunConfig(
            name=TUNE_NAME,
            storage_path=str((state.path.parent / "ray").resolve()),
            verbose=0,
            callbacks=[monitor],
            failure_config=tune.FailureConfig(max_failures=options.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            log_to_file=True,
        )
        progress.line(_start_line(resolved, len(pending), concurrency, state.path.parent, packing.describe(concurrency)))
        if spec.kind == "ablation":
            tuner = _ablation_tuner(trainable, pending, packing, run_config, resolved)
        else:
            tuner = _search_tuner(trainable, resolved, state, concurrency, run_config, options.resume)
        try:
            grid = tuner.fit()
        except Exception:
            if monitor.fatal is not None:  # a full disk: Tune's error holds only its traceback's text
                raise monitor.fatal from None
            raise
        return _interrupted(resolved, StudyState.load(state.path), grid, tracker, monitor)
    finally:
        if started_ray:
            ray.shutdown()
        shutil.rmtree(state.path.parent / FRAME_CACHES, ignore_errors=True)


def fresh_frame_caches(run_dir: Path) -> dict[str, str]:
    """Empty folders for this invocation's shared per-frame caches, as config key -> absolute path: what a
    killed earlier driver left there is removed, so entries never outlive the code that wrote them."""
    root = run_dir / FRAME_CACHES
    shutil.rmtree(root, ignore_errors=True)
    folders = {}
    for key, name in SHARED_FRAME_CACHES.items():
        (root / name).mkdir(parents=True)
        folders[key] = str((root / name).resolve())
    return folders


def _trial_resources(packing: Packing, cpu: float, gpu: float) -> dict[str, float]:
    """Ray's resource request of every trial: ``cpu``, or with a shared tail the tail's share, the same
    for all trials so that Tune can reuse any actor for any trial (lwgan/study/packing.py)."""
    return {"cpu": packing.ray_cpu if packing.shared_tail else cpu, "gpu": gpu}


def _start_line(resolved: ResolvedStudy, pending: int, concurrency: int, run_dir: Path, packing_note: str = "") -> str:
    spec = resolved.spec
    what = f"{pending} trials to run" if spec.kind == "ablation" else f"search of up to {spec.budget.max_trials or 16} trials"
    at_a_time = f"{concurrency} at a time" + (f" ({packing_note})" if packing_note else "")
    return (f"study {spec.name} | profile {resolved.profile} | {what}, {at_a_time} | "
            f"objective {spec.objective.metric} ({spec.objective.mode}) | folder {run_dir}")


def _ablation_tuner(trainable, pending: list[str], packing: Packing, run_config, resolved: ResolvedStudy):
    from ray import tune

    # One explicit config per unfinished trial, in run order; the Trainer resumes each from its own folder.
    if packing.shared_tail:  # the pairs held to two by the packing's accounting, the tail all at once
        from lwgan.study.packed_order import PackedOrder

        source = dict(search_alg=PackedOrder(pending, packing), num_samples=len(pending))
        param_space = None
    else:
        source = dict(num_samples=1)
        param_space = {"trial_id": tune.grid_search(list(pending))}
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            **source,
            max_concurrent_trials=packing.max_concurrent,
            reuse_actors=True,
            trial_name_creator=ablation_name,
            trial_dirname_creator=ablation_name,
            time_budget_s=resolved.spec.budget.time_budget_s,
        ),
        run_config=run_config,
    )


def _search_tuner(trainable, resolved: ResolvedStudy, state: StudyState, concurrency: int, run_config, resume: bool):
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from lwgan.study.space import DefineByRun
    from lwgan.study.spec import search_baseline_point

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = resolved.spec
    path = str(Path(run_config.storage_path) / TUNE_NAME)
    if resume and tune.Tuner.can_restore(path):
        # Restores the Optuna searcher and the trial list; unfinished trials continue from checkpoints.
        return tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=False)
    searcher = OptunaSearch(
        space=DefineByRun(spec.search),
        metric=TuneKey.OBJECTIVE,
        mode=spec.objective.mode,
        points_to_evaluate=[search_baseline_point(spec, resolved.baseline)],
        seed=resolved.seeds[0],
    )
    # max_t out of reach: ASHA only stops trials at its rungs, never at the end (that is the trial's own).
    scheduler = ASHAScheduler(metric=TuneKey.OBJECTIVE, mode=spec.objective.mode, time_attr=TuneKey.STEP, grace_period=spec.scheduler.grace_period,
                              reduction_factor=spec.scheduler.reduction_factor, max_t=10**9)
    namer = SearchNamer(state.path.parent / "search_names.json", 0)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=spec.budget.max_trials or 16,
            max_concurrent_trials=concurrency,
            reuse_actors=True,
            trial_name_creator=namer,
            trial_dirname_creator=namer.dirname,
            time_budget_s=spec.budget.time_budget_s,
        ),
        run_config=run_config,
    )


def _interrupted(resolved: ResolvedStudy, state: StudyState, grid, tracker, monitor) -> bool:
    """After fit(): unfinished trials mean Ctrl-C; their MLflow runs are closed as KILLED (reopened on resume).

    A search that ran all its trials (or its time budget) may still hold trials Ray lost when the driver
    was SIGKILLed before its last snapshot: Optuna suggested replacements, so those are marked failed.
    """
    if resolved.kind == "search":
        max_trials = resolved.spec.budget.max_trials or 16
        if len(grid) < max_trials and not _budget_spent(resolved, monitor):
            _close_running(state, tracker)
            return True
        for rec in state.unfinished():
            if rec.state == TrialStatus.PENDING:
                error = "lost when the driver was killed before Ray saved it; Optuna suggested a replacement"
                record_outcome(state, tracker, rec.trial_id, TrialOutcome(TrialStatus.FAILED, rec.step, error))
    unfinished = state.unfinished()
    _close_running(state, tracker)
    return bool(unfinished)


def _close_running(state: StudyState, tracker) -> None:
    for rec in state.unfinished():
        if rec.state == TrialStatus.RUNNING and rec.mlflow_run_id:
            tracker.client.set_terminated(rec.mlflow_run_id, "KILLED")


def _budget_spent(resolved: ResolvedStudy, monitor) -> bool:
    budget = resolved.spec.budget.time_budget_s
    return bool(budget) and time.monotonic() - monitor.started >= budget


def _build_report(outcome: StudyOutcome, study: str, tracker, options: RunOptions, progress) -> None:
    """The report generator, when installed; a failure there never loses the study (it is in MLflow)."""
    from lwgan.paths import project_dir

    out_dir = options.report_dir or project_dir() / "reports" / study
    try:
        from lwgan.report.builder import build_report
    except ImportError as err:
        outcome.report_error = f"report generator unavailable ({err}); the study is in MLflow: lwgan-study report {study}"
        progress.line(outcome.report_error)
        return
    try:
        paths = build_report(outcome.parent_run_id, out_dir, ("md", "pdf"), tracking_uri=tracker.uri)
        outcome.report_paths = [Path(p) for p in paths]
        tracker.log_folder(outcome.parent_run_id, Path(out_dir), "report")
        from lwgan.catalog.note import publish_note

        publish_note(tracker.client, outcome.parent_run_id, Path(out_dir) / "report.md")  # Table 1 on MLflow's run page
    except Exception as err:  # noqa: BLE001 - the study is done and tracked; say what failed and how to retry
        last = str(err).splitlines()[-1] if str(err) else type(err).__name__
        outcome.report_error = f"the report failed ({type(err).__name__}: {last}); the study is safe in MLflow - retry with: lwgan-study report {study}"
        progress.line(outcome.report_error)
