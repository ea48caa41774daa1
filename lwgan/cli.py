"""The ``lwgan-study`` command line: parses arguments and hands each command to the module that owns it.

User errors (``lwgan.errors.UserError``, which includes ConfigError and StudyError)
print one clean message and exit 2; nothing here holds logic a module should own.
"""

from __future__ import annotations

import argparse
import os
import sys


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lwgan-study", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # run / validate / report / ui -------------------------------------------------
    r = sub.add_parser("run", help="run a study (Ray Tune trials, tracked in MLflow, report at the end)")
    r.add_argument("study", nargs="?", default=None, help="study YAML (default: the embedded baseline study)")
    r.add_argument("--profile", default=None, help="profile to run (default: the study's default profile)")
    r.add_argument("--dry-run", action="store_true", help="print the trials that would run and exit")
    r.add_argument("--resume", action="store_true", help="finish an interrupted study without rerunning finished trials")
    r.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    r.add_argument("--seeds", type=int, default=None, help="override the number of seeds per variant")
    r.add_argument("--steps", type=int, default=None, help="override max_steps of every trial")
    r.add_argument("--max-concurrent", type=int, default=None, help="trials at a time (default: CPUs / trial CPUs)")
    r.add_argument("--no-report", action="store_true", help="do not build the report at the end")
    r.add_argument("--storage", default=None, help="folder for Ray results and checkpoints (default: runs/studies)")
    r.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="override a config key in every trial")

    v = sub.add_parser("validate", help="check a study YAML and print the trials it defines")
    v.add_argument("study")
    v.add_argument("--profile", default=None)
    v.add_argument("--seeds", type=int, default=None, help="override the number of seeds per variant")
    v.add_argument("--steps", type=int, default=None, help="override max_steps of every trial")
    v.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="override a config key in every trial")

    rep = sub.add_parser("report", help="build the Markdown/PDF report of a study from MLflow")
    rep.add_argument("study", help="study YAML, study name, or MLflow parent run id")
    rep.add_argument("--out", default=None, help="output folder (default: reports/<study>)")
    rep.add_argument("--format", default="md,pdf", help="comma-separated: md, pdf")

    ui = sub.add_parser("ui", help="start the MLflow UI on 127.0.0.1 against the project's store")
    ui.add_argument("--port", type=int, default=5000)

    # train ---------------------------------------------------------------------
    t = sub.add_parser("train", help="train one LWGAN run (no Ray, no MLflow)")
    t.add_argument("config", nargs="?", default=None, help="YAML of flat config keys (optional)")
    t.add_argument("--profile", default=None, help="small (default) | tiny | paper")
    t.add_argument("--steps", type=int, default=None, help="max_steps")
    t.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    t.add_argument("--out", default=None, help="output folder (default: runs/train-<time>)")
    t.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    t.add_argument("--help-keys", action="store_true", help="list every config key with its default and exit")

    # data ----------------------------------------------------------------------
    d = sub.add_parser("data", help="datasets: synthesise a mini-iPER, check an iPER-format folder")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    ds = dsub.add_parser("synth", help="write a synthetic mini-iPER in the iPER layout")
    ds.add_argument("--out", required=True)
    ds.add_argument("--subjects", type=int, default=4)
    ds.add_argument("--frames", type=int, default=24)
    ds.add_argument("--size", type=int, default=128)
    ds.add_argument("--seed", type=int, default=0)
    ds.add_argument("--body-model", default=None, help="SMPL .npz/.pkl (default: the generated body)")
    dc = dsub.add_parser("check", help="check an iPER-format folder; exit 1 on problems")
    dc.add_argument("dir")

    # body ----------------------------------------------------------------------
    b = sub.add_parser("body", help="body models: convert an official SMPL pkl, generate the stand-in body")
    bsub = b.add_subparsers(dest="body_command", required=True, metavar="ACTION")
    bc = bsub.add_parser("convert", help="convert an official SMPL .pkl (chumpy inside) to .npz, without chumpy")
    bc.add_argument("src")
    bc.add_argument("dst")
    bg = bsub.add_parser("generate", help="write the generated stand-in body model in SMPL format")
    bg.add_argument("out")
    bg.add_argument("--seed", type=int, default=0)
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
        from lwgan.tracking import command_ui

        return command_ui(args)
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
    args = _build_parser().parse_args(argv)
    try:
        return int(_dispatch(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
