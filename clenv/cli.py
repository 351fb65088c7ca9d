"""The ``clenv`` command: run, check, list, plot, compare.

torch is imported only by ``run``; ``--help``, ``check`` and ``list`` stay light.
User errors print one line and exit 2, leaving no results files; failures of the environment
(a full disk, out of memory, other OS errors) print one line and exit 1 (docs/reliability.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from clenv.errors import EnvironmentFailure, UserError
from clenv.progress import wants_progress
from clenv.results import FIGURE_FORMATS, figure_out  # noqa: F401 (their old path)

SUMMARY_KEYS = ("final_accuracy", "avg_incremental_accuracy", "average_forgetting", "bwt",
                "fwt", "a_auc", "a_last", "f_last", "online_accuracy", "intransigence", "map",
                "average_map", "cf1", "of1", "gcd_all", "gcd_old", "gcd_new", "novel_coverage",
                "final_mse", "mse_forgetting", "mse_bwt")
# metrics_version 2: "f_last" is the i-Blurry code's rule; "cf1" is MULTI-LANE's mean per-class F1


EXIT_CODES = """exit status:
  0    success
  1    environment failure: a run crashed or a sweep run failed, a missing file,
       package or device outside the config's control
  2    user error: a bad config, option or data root (one line on stderr;
       no results files written)
  130  interrupted (Ctrl-C)"""


def _parser() -> argparse.ArgumentParser:
    from clenv.version import __version__

    p = argparse.ArgumentParser(prog="clenv", description="Continual-learning simulation "
                                "environment: YAML scenarios, pluggable strategies, metrics.",
                                epilog=EXIT_CODES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"clenv {__version__}")
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
    r.add_argument("--logger", dest="loggers", action="append", default=[],
                   choices=("tensorboard", "csv"), help="also write every evaluation to this "
                   "logger (repeatable; adds to output.loggers)")
    r.add_argument("--force", action="store_true", help="write into a folder that holds files "
                   "clenv did not write (only clenv's own files are replaced)")
    c = sub.add_parser("check", help="validate a config without running it")
    config_args(c)
    sub.add_parser("list", help="scenarios, datasets, strategies, models and metrics")
    sub.add_parser("schema", help="print the JSON Schema of config files (for editors: "
                   "clenv schema > clenv.schema.json)")
    pl = sub.add_parser("plot", help="forgetting curves and accuracy-matrix heatmap")
    pl.add_argument("dirs", nargs="+", help="results folders")
    pl.add_argument("--out", help="figure file (default: forgetting.png in the first folder, "
                    "or forgetting_compare.png when several folders are given)")
    pl.add_argument("--dial", help="sweep folder: draw the paired difference to --baseline "
                    "against this axis (docs/regimes.md)")
    pl.add_argument("--baseline", help="with --dial: the group each method is paired "
                    "against, e.g. strategy.query=random")
    pl.add_argument("--metrics", help="with --dial: comma-separated metrics, one panel each "
                    "(default: final_accuracy)")
    cp = sub.add_parser("compare", help="a table of summary metrics")
    cp.add_argument("dirs", nargs="+", help="results folders")
    cp.add_argument("--format", choices=("markdown", "csv"), default="markdown")
    from clenv.sweep.cli import add_compare_args, add_sweep_parser

    add_compare_args(cp)
    add_sweep_parser(sub)
    return p


def _load(args: argparse.Namespace) -> dict:
    from clenv.config.loader import load_config

    return load_config(args.config, overrides=args.sets, strategy=args.strategy, seed=args.seed,
                       loggers=getattr(args, "loggers", None))


def cmd_check(args: argparse.Namespace) -> int:
    cfg = _load(args)
    from clenv.data.registry import load_pool as _load_pool
    from clenv.families.registry import choose
    from clenv.text.encoder import without_models

    def load_pool(data_cfg: dict):  # no sentence encoder (torch) here: labels are what counts
        with without_models():
            return _load_pool(data_cfg)

    # the pool and the family's Env as `run` builds them (numpy only): the same refusals (a
    # stream's classes, an agcd split's old classes and budget)
    pool = load_pool(cfg["data"])
    sc = cfg["scenario"]
    if sc.get("validation"):
        from clenv.validation import carve_validation

        pool, _ = carve_validation(pool, sc["validation"], sc["seed"])
    choose(cfg, pool)
    print(f"ok: {args.config} ({cfg['scenario']['generator']}, {cfg['data']['source']}, "
          f"{cfg['strategy']['name']}, {cfg['model']['name']})")
    return 0


def resume_run(args) -> int:
    """``clenv run --resume DIR``: continue DIR's run from its checkpoint (or from the start
    when it has none); a complete run is left as it is."""
    from clenv.checkpoint import CHECKPOINT_NAME, refuse
    from clenv.config.loader import load_config
    from clenv.results import is_complete
    from clenv.runner import Run, make_strategy
    from clenv.strategies.base import supports_checkpoint

    if args.resume is None:
        raise UserError("run: give a CONFIG file, or --resume DIR to continue a run")
    if (args.config or args.strategy or args.seed is not None or args.sets or args.out
            or getattr(args, "loggers", None)):
        raise UserError("run --resume DIR takes no CONFIG, --strategy, --seed, --set, --out or "
                        "--logger: the run continues with DIR/config.yaml")
    out = Path(args.resume)
    if not (out / "config.yaml").is_file():
        raise UserError(f"--resume {out}: no config.yaml there; give a results folder written "
                        "by clenv run")
    if is_complete(out):
        print(f"{out}: already complete (metrics.json); nothing to resume")
        return 0
    cfg = load_config(out / "config.yaml")
    strategy = make_strategy(cfg["strategy"])
    if not supports_checkpoint(strategy):
        refuse(cfg, strategy, "--resume")
    had = (out / CHECKPOINT_NAME).is_file()
    metrics = Run(cfg).execute(out, resume=True, progress=wants_progress(args.quiet),
                              force=getattr(args, "force", False))
    if not args.quiet:
        how = "resumed from its checkpoint" if had else "rerun from the start (no checkpoint)"
        acc = metrics.get("final_accuracy")
        extra = f" final_accuracy={acc:.4f}" if isinstance(acc, float) else ""
        print(f"{cfg['name']}: {how};{extra} results in {out}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if args.resume or args.config is None:
        return resume_run(args)
    cfg = _load(args)
    out = Path(args.out or cfg["output"]["dir"] or Path("results") / cfg["name"])
    from clenv.results import check_out_path

    check_out_path(out)
    from clenv.runner import Run, make_strategy

    run = Run(cfg)  # loads the data and builds the stream: user errors surface here
    make_strategy(cfg["strategy"])
    created = not out.exists()
    try:
        metrics = run.execute(out, progress=wants_progress(args.quiet), force=args.force)
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


def _metrics_of(d: str, keys: tuple[str, ...] = ("name",)) -> dict:
    from clenv.results import read_metrics

    return read_metrics(d, keys)


def _plot_runs(dirs: list[str]) -> tuple[list[str], dict[str, dict]]:
    """The scenario family of every folder and the metrics of the complete ones, read before
    anything is drawn (one line for a damaged, foreign or older folder, and for runs of
    different families)."""
    from clenv.results import family, read_run_events

    families = [family(read_run_events(d)[0]) for d in dirs]
    from clenv.plots import family_of

    metrics = {d: _metrics_of(d, ("name",) if f == "agcd" else
                              ("name", family_of(read_run_events(d)[0]).matrix))
               for d, f in zip(dirs, families, strict=True)
               if (Path(d) / "metrics.json").is_file()}
    if len(set(families)) > 1:
        mixed = ", ".join(f"{Path(d).name} ({f})" for d, f in zip(dirs, families, strict=True))
        raise UserError(f"runs of different scenario families cannot share a figure: {mixed}; "
                        "plot them apart")
    return families, metrics


def _older(d: str, exc: Exception) -> UserError:
    from clenv.results import written_by

    return UserError(f"{d}: cannot read its results ({type(exc).__name__}: "
                     f"{' '.join(str(exc).split())[:60]}); written by {written_by(d)} in a form "
                     "this clenv does not read: run it again with this clenv")


def cmd_plot(args: argparse.Namespace) -> int:
    from clenv.sweep.driver import is_sweep_dir

    if len(args.dirs) == 1 and is_sweep_dir(args.dirs[0]):  # mean and band over seeds
        from clenv.sweep.cli import cmd_plot_sweep

        return cmd_plot_sweep(args)
    if args.dial or args.baseline or args.metrics:
        raise UserError("--dial, --baseline and --metrics apply to one sweep folder (holding "
                        "sweep.json); give the folder clenv sweep wrote")
    families, metrics_of = _plot_runs(args.dirs)
    if families[0] == "agcd":  # per-round All/Old/New curves of active category discovery runs
        from clenv.agcd.plots import plot_agcd_rounds

        name = "agcd_rounds.png" if len(args.dirs) == 1 else "agcd_rounds_compare.png"
        out = figure_out(args.out, Path(args.dirs[0]) / name)
        try:
            plot_agcd_rounds(args.dirs, out)
        except (KeyError, TypeError, ValueError, IndexError, StopIteration) as exc:
            raise _older(args.dirs[0], exc) from None
        print(f"wrote {out}")
        return 0
    from clenv.plots import family_of, plot_accuracy_matrix, plot_forgetting
    from clenv.results import read_run_events

    default = Path(args.dirs[0]) / ("forgetting.png" if len(args.dirs) == 1
                                    else "forgetting_compare.png")
    out = figure_out(args.out, default)
    try:
        plot_forgetting(args.dirs, out)
    except (KeyError, TypeError, ValueError, IndexError, StopIteration) as exc:
        raise _older(args.dirs[0], exc) from None
    print(f"wrote {out}")
    _plot_plasticity(args)
    for d, metrics in metrics_of.items():
        if metrics is not None:
            try:
                family = family_of(read_run_events(d)[0])
                hm = plot_accuracy_matrix(d, Path(d) / f"{family.matrix}.png", metrics,
                                          family)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise _older(d, exc) from None
            print(f"wrote {hm}")
    return 0


def _plot_plasticity(args: argparse.Namespace) -> None:
    """plasticity.png beside forgetting.png for runs with plasticity diagnostics or streams."""
    from clenv.metrics.summary import read_events
    from clenv.plots import has_plasticity, plot_plasticity

    dirs = [d for d in args.dirs if has_plasticity(read_events(Path(d) / "events.jsonl"))]
    if not dirs:
        return
    out = Path(args.dirs[0]) / ("plasticity.png" if len(args.dirs) == 1
                                else "plasticity_compare.png")
    try:
        plot_plasticity(dirs, out)
    except (KeyError, TypeError, ValueError, IndexError, StopIteration) as exc:
        raise _older(dirs[0], exc) from None
    print(f"wrote {out}")


def _fmt(v) -> str:
    return "null" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def cmd_compare(args: argparse.Namespace) -> int:
    from clenv.sweep.driver import is_sweep_dir

    if len(args.dirs) == 1 and is_sweep_dir(args.dirs[0]):  # grouped over seeds
        from clenv.sweep.cli import cmd_compare_sweep

        return cmd_compare_sweep(args)
    if (args.baseline or args.sort or args.metrics or args.all or args.diff_metric or args.out
            or args.dial):
        raise UserError("--baseline, --sort, --metrics, --diff-metric, --all, --dial and --out "
                        "apply to one sweep folder (holding sweep.json); give the folder clenv "
                        "sweep wrote")
    from clenv.sweep.aggregate import require_one_metrics_version

    loaded = {d: _metrics_of(d) for d in args.dirs}
    require_one_metrics_version(loaded)
    rows = []
    for d in args.dirs:
        m = loaded[d]
        wall = m.get("wall_time", {}).get("total") if isinstance(m.get("wall_time"),
                                                                 dict) else None
        rows.append([Path(d).name, str(m["name"]), *[_fmt(m.get(k)) for k in SUMMARY_KEYS],
                     _fmt(float(wall)) if isinstance(wall, int | float) else "null"])
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


def cmd_schema(args: argparse.Namespace) -> int:
    """The JSON Schema of a config file, from the typed models (clenv.config.typed)."""
    import json

    from clenv.config.typed import json_schema

    print(json.dumps(json_schema(), indent=1))
    return 0


COMMANDS["schema"] = cmd_schema


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe (clenv list | head) surfaces here, not at exit
        return code
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EnvironmentFailure as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away: say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except MemoryError:
        print("error: out of memory; give the run less data (a smaller stream, batch or "
              "model) or a machine with more memory", file=sys.stderr)
        return 1
    except OSError as exc:  # the environment failed (disk, permissions, a vanished file)
        what = exc.strerror or str(exc)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {' '.join(f'{what}{where}'.split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
