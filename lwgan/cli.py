"""The ``lwgan-study`` command line: parses arguments and hands each command to the module that owns it.

Results go to stdout, progress and diagnostics to stderr. User errors (``lwgan.errors.UserError``, which
includes ConfigError and StudyError) print one clean message and exit 2; nothing here holds logic a
module should own.
"""

from __future__ import annotations

import argparse
import os
import sys

DESCRIPTION = "Run, track and report ablation studies of the Liquid Warping GAN (Ray Tune trials, MLflow, reports)."
EXIT_CODES = """\
exit codes:
  0    done (for run: every trial ended completed, diverged or pruned, and the report was written)
  1    run: a trial failed, or the report could not be written (the study itself is safe in MLflow)
  2    usage or user error: bad arguments, study file, config key or value, missing data
  130  interrupted (Ctrl-C); `lwgan-study run STUDY --resume` finishes a study"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in every option's help (unless the help states it in words, or there is none), and
    examples/epilogs kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, [], argparse.SUPPRESS):
            return text
        return super()._get_help_string(action) or text


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lwgan-study")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown (not installed)"


def _command(sub, name: str, help_text: str, *examples: str) -> argparse.ArgumentParser:
    epilog = "example" + ("s" if len(examples) > 1 else "") + ":\n" + "\n".join(f"  {e}" for e in examples)
    return sub.add_parser(name, help=help_text, description=help_text, epilog=epilog, formatter_class=_Formatter)


def _build_parser() -> argparse.ArgumentParser:
    from lwgan.cli_flags import add_config_flags
    from lwgan.profiles import PROFILES

    profiles = tuple(PROFILES)
    p = argparse.ArgumentParser(prog="lwgan-study", description=DESCRIPTION, epilog=EXIT_CODES,
                                formatter_class=_Formatter)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    # run / validate / report / ui -------------------------------------------------
    r = _command(sub, "run", "run a study (Ray Tune trials, tracked in MLflow, report at the end)",
                 "lwgan-study run studies/ensembles.yaml --profile tiny --seeds 1",
                 "lwgan-study run ttur --resume                 # a shipped study by name; finish its latest run",
                 "lwgan-study run --resume 3f2a...c9            # finish an older run, by its parent run id")
    r.epilog += "\n\n" + EXIT_CODES
    r.add_argument("study", nargs="?", default=None,
                   help="study YAML, or a shipped study's name (default: the embedded ensembles study)")
    r.add_argument("--dry-run", action="store_true", help="print the trials that would run and exit")
    r.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN_ID",
                   help="finish an interrupted study without rerunning finished trials: its latest run, or the run "
                        "with this MLflow parent run id (lwgan-study ls)")
    r.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    r.add_argument("--max-concurrent", type=int, default=None, help="trials at a time (default: CPUs / trial CPUs)")
    r.add_argument("--no-report", action="store_true", help="do not build the report at the end")
    r.add_argument("--storage", default=None, help="folder for Ray results and checkpoints (default: <project>/runs/studies)")
    add_config_flags(r, profiles, study=True)

    v = _command(sub, "validate", "check a study YAML and print the trials it defines",
                 "lwgan-study validate studies/ensembles.yaml --profile tiny")
    v.add_argument("study", help="study YAML, or a shipped study's name")
    add_config_flags(v, profiles, study=True)

    from lwgan.report.builder import DEFAULT_FORMATS, FORMATS

    rep = _command(sub, "report", "build the Markdown/PDF report of a study from MLflow",
                   "lwgan-study report ensembles                  # the latest run of the study",
                   "lwgan-study report 3f2a...c9 --format md,tex  # an older run, by its parent run id; tables as LaTeX")
    rep.add_argument("study", help="study YAML, study name (its latest run), or MLflow parent run id")
    rep.add_argument("--out", default=None, help="output folder (default: <project>/reports/<study>)")
    rep.add_argument("--format", default=",".join(DEFAULT_FORMATS), help=f"comma-separated, from: {', '.join(FORMATS)}")

    ui = _command(sub, "ui", "start the MLflow UI against the project's store (the one `lwgan-study run` writes)",
                  "lwgan-study ui --port 5001", "lwgan-study ui --host 0.0.0.0    # reachable from other machines")
    ui.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    ui.add_argument("--port", type=int, default=5000, help="port to listen on")

    # find and compare ------------------------------------------------------------
    i = _command(sub, "init", "copy the shipped study files into a folder to edit",
                 "lwgan-study init my-studies && lwgan-study run my-studies/ensembles.yaml")
    i.add_argument("dir", nargs="?", default="studies", help="folder to copy them into")
    i.add_argument("--force", action="store_true", help="overwrite study files already there")

    ls = _command(sub, "ls", "list every study in the tracking store: parent runs, trial counts by state, reports",
                  "lwgan-study ls", "lwgan-study ls ensembles --format csv > runs.csv")
    ls.add_argument("study", nargs="?", default=None, help="only this study")
    ls.add_argument("--format", default="table", choices=("table", "csv"), help="output format")

    sh = _command(sub, "show", "show one study run: its trials with their states, the best trial, the verdicts",
                  "lwgan-study show ensembles                    # the latest run of the study",
                  "lwgan-study show 3f2a...c9                    # a parent run id from lwgan-study ls")
    sh.add_argument("ref", metavar="STUDY|RUN_ID", help="study name (its latest run), study YAML, or parent run id")

    c = _command(sub, "compare", "compare two study runs per variant and metric (A - B, with the report's statistics)",
                 "lwgan-study compare 3f2a...c9 8e41...07 --out reports/compare")
    c.add_argument("a", metavar="A", help="parent run id (or study name = its latest run)")
    c.add_argument("b", metavar="B", help="parent run id to compare against")
    c.add_argument("--metric", action="append", default=None, metavar="NAME",
                   help="metric(s) to compare, repeatable or comma-separated (default: every loss and eval metric both runs logged)")
    c.add_argument("--out", default=None, help="also write compare.md and compare.csv into this folder")

    cf = _command(sub, "confirm", "confirm a search: run its top K configurations against the baseline with N seeds",
                  "lwgan-study confirm 3f2a...c9 --top 3 --seeds 3            # writes search-confirm.yaml and runs it",
                  "lwgan-study confirm 3f2a...c9 --dry-run                    # write it and show the trials only")
    cf.add_argument("run_id", metavar="RUN_ID", help="the search's parent run id (or its study name = its latest run)")
    cf.add_argument("--top", type=int, default=3, help="how many of the best distinct configurations")
    cf.add_argument("--seeds", type=int, default=3, help="seeds per configuration (and for the baseline)")
    cf.add_argument("--out", default=None, help="where to write the study (default: ./<study>-confirm.yaml)")
    cf.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    cf.add_argument("--profile", default=None, choices=profiles, help="profile (default: the search's default profile)")
    cf.add_argument("--dry-run", action="store_true", help="write the study, print its trials, run nothing")
    cf.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    cf.add_argument("--max-concurrent", type=int, default=None, help="trials at a time (default: CPUs / trial CPUs)")
    cf.add_argument("--storage", default=None, help="folder for Ray results and checkpoints (default: <project>/runs/studies)")

    # train ---------------------------------------------------------------------
    t = _command(sub, "train", "train one LWGAN run (no Ray; MLflow only with --track)",
                 "lwgan-study train --profile small --steps 900 --set gp_weight=10 --out runs/gp10",
                 "lwgan-study train --profile tiny --track        # recorded in MLflow beside the studies",
                 "lwgan-study train --help-keys")
    t.add_argument("config", nargs="?", default=None, help="YAML of flat config keys (optional)")
    add_config_flags(t, profiles, study=False)
    t.add_argument("--out", default=None, help="output folder (default: runs/train-<time>)")
    t.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    t.add_argument("--track", action="store_true",
                   help="record the run in the project's MLflow store (params, metrics, artifacts), beside the studies")
    t.add_argument("--help-keys", action="store_true", help="list every config key with its default and exit")

    # data ----------------------------------------------------------------------
    d = _command(sub, "data", "datasets: synthesise a mini-iPER, check an iPER-format folder",
                 "lwgan-study data synth --out data/mini", "lwgan-study data check /data/iPER")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    ds = _command(dsub, "synth", "write a synthetic mini-iPER in the iPER layout", "lwgan-study data synth --out data/mini --subjects 6")
    ds.add_argument("--out", required=True, help="output folder")
    ds.add_argument("--subjects", type=int, default=4, help="subjects")
    ds.add_argument("--frames", type=int, default=24, help="frames per video")
    ds.add_argument("--size", type=int, default=128, help="image size in pixels")
    ds.add_argument("--seed", type=int, default=0, help="random seed")
    ds.add_argument("--body-model", default=None, help="SMPL .npz/.pkl (default: the generated body)")
    dc = _command(dsub, "check", "check an iPER-format folder; exit 1 on problems", "lwgan-study data check /data/iPER")
    dc.add_argument("dir", help="iPER-format folder")

    # body ----------------------------------------------------------------------
    b = _command(sub, "body", "body models: convert an official SMPL pkl, generate the stand-in body",
                 "lwgan-study body convert basicModel_neutral_lbs_10_207_0_v1.0.0.pkl smpl_neutral.npz")
    bsub = b.add_subparsers(dest="body_command", required=True, metavar="ACTION")
    bc = _command(bsub, "convert", "convert an official SMPL .pkl (chumpy inside) to .npz, without chumpy",
                  "lwgan-study body convert basicModel_neutral_lbs_10_207_0_v1.0.0.pkl smpl_neutral.npz")
    bc.add_argument("src", help="official SMPL .pkl")
    bc.add_argument("dst", help="output .npz")
    bg = _command(bsub, "generate", "write the generated stand-in body model in SMPL format", "lwgan-study body generate body.npz")
    bg.add_argument("out", help="output .npz")
    bg.add_argument("--seed", type=int, default=0, help="random seed")
    return p


def _dispatch(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "run":
        from lwgan.study.commands import command_run

        return command_run(args)
    if cmd == "validate":
        from lwgan.study.commands import command_validate

        return command_validate(args)
    if cmd == "report":
        from lwgan.report.commands import command_report

        return command_report(args)
    if cmd == "ui":
        from lwgan.tracking_commands import command_ui

        return command_ui(args)
    if cmd in ("init", "ls", "show", "compare", "confirm"):
        from lwgan.catalog import commands

        return getattr(commands, f"command_{cmd}")(args)
    if cmd == "train":
        from lwgan.train.commands import command_train

        return command_train(args)
    if cmd == "data":
        from lwgan.data.commands import command_check, command_synth

        return command_synth(args) if args.data_command == "synth" else command_check(args)
    if cmd == "body":
        from lwgan.body.commands import command_convert, command_generate

        return command_convert(args) if args.body_command == "convert" else command_generate(args)
    raise AssertionError(cmd)


def main(argv: list[str] | None = None) -> int:
    from lwgan.errors import UserError

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # no command: the help, as a usage error
        parser.print_help()
        return 2
    try:
        return int(_dispatch(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The ``lwgan-study`` console script: ``main()``, then exit without the interpreter's last full
    garbage collection. After a study or a report the heap holds millions of objects (matplotlib,
    pandas, MLflow's ORM); the collections at interpreter shutdown walked them all for 1.3 s (a
    report) to 2.4 s (a study driver) while everything was already written. ``gc.freeze()`` moves
    them out of the collector's reach: atexit handlers still run and modules are still torn down
    (files close by reference counting), only garbage cycles are left to the operating system.
    ``main()`` itself stays an ordinary function for callers in-process (tests, scripts)."""
    import gc

    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry()
