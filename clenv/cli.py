"""The ``clenv`` command: run, check, list, plot, compare.

torch is imported only by ``run``; ``--help``, ``check`` and ``list`` stay light.
User errors print one line and exit 2, leaving no results files.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from clenv.errors import EnvironmentFailure, UserError

SUMMARY_KEYS = ("final_accuracy", "avg_incremental_accuracy", "average_forgetting", "bwt",
                "fwt", "a_auc", "a_last", "f_last", "online_accuracy", "intransigence", "map",
                "average_map", "cf1", "of1", "gcd_all", "gcd_old", "gcd_new", "novel_coverage")
# metrics_version 2: "f_last" is the i-Blurry code's rule; "cf1" is MULTI-LANE's mean per-class F1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clenv", description="Continual-learning simulation "
                                "environment: YAML scenarios, pluggable strategies, metrics.")
    sub = p.add_subparsers(dest="command", required=True)

    def config_args(sp: argparse.ArgumentParser, optional: bool = False) -> None:
        sp.add_argument("config", nargs="?" if optional else None, help="scenario YAML file")
        sp.add_argument("--strategy", help="strategies/*.yaml preset or a registered name; "
                        "replaces the config's strategy")
        sp.add_argument("--seed", type=int, help="learner seed (overrides seed)")
        sp.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set scenario.n_tasks=5")

    r = sub.add_parser("run", help="run a scenario and write a results folder")
    config_args(r, optional=True)
    r.add_argument("--out", help="results folder (default: results/<name>)")
    r.add_argument("--resume", metavar="DIR", help="continue the run in results folder DIR "
                   "from its last checkpoint (output.checkpoint_every); no CONFIG then")
    r.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    c = sub.add_parser("check", help="validate a config without running it")
    config_args(c)
    sub.add_parser("list", help="scenarios, datasets, strategies, models and metrics")
    pl = sub.add_parser("plot", help="forgetting curves and accuracy-matrix heatmap")
    pl.add_argument("dirs", nargs="+", help="results folders")
    pl.add_argument("--out", help="figure file (default: forgetting.png in the first folder, "
                    "or forgetting_compare.png when several folders are given)")
    cp = sub.add_parser("compare", help="a table of summary metrics")
    cp.add_argument("dirs", nargs="+", help="results folders")
    cp.add_argument("--format", choices=("markdown", "csv"), default="markdown")
    from clenv.sweep.cli import add_compare_args, add_sweep_parser

    add_compare_args(cp)
    add_sweep_parser(sub)
    return p


def _load(args: argparse.Namespace) -> dict:
    from clenv.config.loader import load_config

    return load_config(args.config, overrides=args.sets, strategy=args.strategy, seed=args.seed)


def cmd_check(args: argparse.Namespace) -> int:
    cfg = _load(args)
    from clenv.data.registry import SOURCES, load_pool

    if cfg["scenario"]["generator"] == "agcd":  # the split checks old classes and the budget
        from clenv.agcd.loop import make_agcd_env

        make_agcd_env(cfg, load_pool(cfg["data"]))
    elif SOURCES[cfg["data"]["source"]].needs_root or cfg["data"].get("tree"):
        load_pool(cfg["data"])  # numpy only: proves the root and tree files are readable
    print(f"ok: {args.config} ({cfg['scenario']['generator']}, {cfg['data']['source']}, "
          f"{cfg['strategy']['name']}, {cfg['model']['name']})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if args.resume or args.config is None:
        from clenv.checkpoint import resume_cli

        return resume_cli(args)
    cfg = _load(args)
    out = Path(args.out or cfg["output"]["dir"] or Path("results") / cfg["name"])
    from clenv.runner import Run, make_strategy

    run = Run(cfg)  # loads the data and builds the stream: user errors surface here
    make_strategy(cfg["strategy"])
    created = not out.exists()
    try:
        metrics = run.execute(out, progress=not args.quiet and sys.stderr.isatty())
    except UserError:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    if not args.quiet:
        parts = [f"{k}={metrics[k]:.4f}" for k in SUMMARY_KEYS
                 if isinstance(metrics.get(k), float)]
        print(f"{cfg['name']}: " + " ".join(parts))
        for msg in metrics["budget_exceeded"]:
            print(f"budget exceeded: {msg}")
        print(f"results in {out}")
    return 0


def cmd_list(_: argparse.Namespace) -> int:
    import clenv
    from clenv.data.registry import describe_sources
    from clenv.metrics import METRICS
    from clenv.models.registry import MODELS
    from clenv.scenarios.registry import GENERATORS
    from clenv.strategies.registry import STRATEGIES

    print("scenarios (ready files):")
    for f in sorted(clenv.SCENARIO_DIR.glob("*.yaml")):
        first = f.read_text().splitlines()[0] if f.stat().st_size else ""
        print(f"  {f.name:28s} {first.lstrip('# ').strip()}")
    print("generators:")
    for g in GENERATORS.values():
        print(f"  {g.name:28s} {g.doc}")
    print("datasets:")
    for name, doc in describe_sources():
        print(f"  {name:28s} {doc}")
    print("strategies:")
    for s in STRATEGIES.values():
        print(f"  {s.name:28s} {s.doc}")
    print("strategy presets (strategies/*.yaml, --strategy NAME):")
    for f in sorted(clenv.STRATEGY_DIR.glob("*.yaml")):
        first = f.read_text().splitlines()[0] if f.stat().st_size else ""
        print(f"  {f.stem:28s} {first.lstrip('# ').strip()}")
    print("models:")
    for m in MODELS.values():
        print(f"  {m.name:28s} {m.doc}")
    print("metrics:")
    for k, v in METRICS.items():
        print(f"  {k:28s} {v}")
    return 0


def _metrics_of(d: str) -> dict:
    path = Path(d) / "metrics.json"
    if not path.is_file():
        raise UserError(f"{d}: no metrics.json; give a results folder written by clenv run")
    return json.loads(path.read_text())


def cmd_plot(args: argparse.Namespace) -> int:
    from clenv.sweep.driver import is_sweep_dir

    if len(args.dirs) == 1 and is_sweep_dir(args.dirs[0]):  # mean and band over seeds
        from clenv.sweep.cli import cmd_plot_sweep

        return cmd_plot_sweep(args)
    for d in args.dirs:
        if not (Path(d) / "events.jsonl").is_file():
            raise UserError(f"{d}: no events.jsonl; give a results folder written by clenv run")
    from clenv.agcd.plots import is_agcd_run

    agcd = [is_agcd_run(d) for d in args.dirs]
    if any(agcd):  # per-round All/Old/New curves of active category discovery runs
        if not all(agcd):
            raise UserError("agcd runs and stream runs cannot share a figure; plot them apart")
        from clenv.agcd.plots import plot_agcd_rounds

        name = "agcd_rounds.png" if len(args.dirs) == 1 else "agcd_rounds_compare.png"
        out = Path(args.out) if args.out else Path(args.dirs[0]) / name
        plot_agcd_rounds(args.dirs, out)
        print(f"wrote {out}")
        return 0
    from clenv.plots import plot_accuracy_matrix, plot_forgetting

    default = Path(args.dirs[0]) / ("forgetting.png" if len(args.dirs) == 1
                                    else "forgetting_compare.png")
    out = Path(args.out) if args.out else default
    plot_forgetting(args.dirs, out)
    print(f"wrote {out}")
    for d in args.dirs:
        if (Path(d) / "metrics.json").is_file():
            hm = plot_accuracy_matrix(d, Path(d) / "accuracy_matrix.png")
            print(f"wrote {hm}")
    return 0


def _fmt(v) -> str:
    return "null" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def cmd_compare(args: argparse.Namespace) -> int:
    from clenv.sweep.driver import is_sweep_dir

    if len(args.dirs) == 1 and is_sweep_dir(args.dirs[0]):  # grouped over seeds
        from clenv.sweep.cli import cmd_compare_sweep

        return cmd_compare_sweep(args)
    if args.baseline or args.sort or args.metrics or args.all or args.diff_metric:
        raise UserError("--baseline, --sort, --metrics, --diff-metric and --all apply to one "
                        "sweep folder (holding sweep.json); give the folder clenv sweep wrote")
    from clenv.sweep.aggregate import require_one_metrics_version

    loaded = {d: _metrics_of(d) for d in args.dirs}
    require_one_metrics_version(loaded)
    rows = []
    for d in args.dirs:
        m = loaded[d]
        wall = m.get("wall_time", {}).get("total")
        rows.append([Path(d).name, m["name"], *[_fmt(m.get(k)) for k in SUMMARY_KEYS],
                     _fmt(float(wall)) if wall is not None else "null"])
    header = ["run", "name", *SUMMARY_KEYS, "wall_s"]
    if args.format == "csv":
        print(",".join(header))
        for r in rows:
            print(",".join(r))
    else:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    return 0


COMMANDS = {"run": cmd_run, "check": cmd_check, "list": cmd_list, "plot": cmd_plot,
            "compare": cmd_compare}


def cmd_sweep(args: argparse.Namespace) -> int:
    from clenv.sweep.cli import cmd_sweep as run

    return run(args)


COMMANDS["sweep"] = cmd_sweep


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EnvironmentFailure as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
