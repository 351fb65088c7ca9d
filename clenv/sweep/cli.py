"""The sweep side of the ``clenv`` command: ``clenv sweep``, and ``clenv compare`` / ``clenv
plot`` on a sweep folder (a folder holding sweep.json)."""

from __future__ import annotations

import argparse
from pathlib import Path

from clenv.errors import UserError


def add_sweep_parser(sub) -> None:
    sw = sub.add_parser("sweep", help="run a sweep (grid of configs x strategies x seeds)")
    sw.add_argument("sweep", help="sweep YAML file (see docs/sweeps.md)")
    sw.add_argument("--out", help="sweep folder (default: results/sweeps/<name>)")
    sw.add_argument("--backend", choices=("local", "ray"), default="local",
                    help="local: a process pool on this machine; ray: a Ray cluster")
    sw.add_argument("--address", help="ray: 'auto' or ray://host:port of a running cluster "
                    "(default: start a local Ray instance)")
    sw.add_argument("--workers", type=int, help="local: parallel runs (default: cores // "
                    "threads)")
    sw.add_argument("--dry-run", action="store_true", help="list the runs, run nothing")
    sw.add_argument("--quiet", action="store_true", help="no progress bars, per-run lines or "
                    "summary (errors still go to stderr)")
    sw.add_argument("--force", action="store_true", help="write into a folder that holds "
                    "files clenv did not write (only clenv's own files are replaced)")


def add_compare_args(cp: argparse.ArgumentParser) -> None:
    cp.add_argument("--baseline", help="sweep folder: the group to difference against, "
                    "e.g. strategy=er")
    cp.add_argument("--sort", help="sweep folder: sort by this metric's mean (descending)")
    cp.add_argument("--ascending", action="store_true", help="sort ascending")
    cp.add_argument("--metrics", help="sweep folder: comma-separated metrics "
                    "(default: the usual summary metrics present)")
    cp.add_argument("--diff-metric", help="sweep folder: metric of the paired difference "
                    "(default: the first one)")
    cp.add_argument("--all", action="store_true", help="sweep folder with select: every "
                    "configuration, not only the selected ones")
    cp.add_argument("--out", help="sweep folder: also put the Markdown table into this file, "
                    "between <!-- clenv compare SECTION --> markers (the rest is kept)")
    cp.add_argument("--section", default="table", help="with --out: the marker's name "
                    "(default: table), so one file can hold several tables")
    cp.add_argument("--dial", help="sweep folder: per metric, a table of the paired "
                    "difference to --baseline at each value of this axis (docs/regimes.md)")


def cmd_sweep(args: argparse.Namespace) -> int:
    from clenv.sweep.spec import load_sweep

    sweep = load_sweep(args.sweep)
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers: expected an integer >= 1, got {args.workers}")
    out = Path(args.out) if args.out else Path("results") / "sweeps" / sweep.name
    if args.dry_run:
        for r in sweep.runs:
            print(f"{r.id}  " + " ".join(f"{k}={v}" for k, v in r.params.items()))
        print(f"{len(sweep.runs)} runs; would write {out}")
        return 0
    from clenv.progress import wants_progress
    from clenv.sweep.driver import run_sweep

    quiet = getattr(args, "quiet", False)
    index = run_sweep(sweep, out, backend=args.backend, address=args.address,
                      workers=args.workers, echo=(lambda *_: None) if quiet else print,
                      progress=wants_progress(quiet), force=args.force)
    return 1 if any(e["status"] == "failed" for e in index["runs"]) else 0


def cmd_compare_sweep(args: argparse.Namespace) -> int:
    from clenv.sweep.aggregate import CSV_NAME, MD_NAME, compare_sweep

    d = args.dirs[0]
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    if getattr(args, "out", None):  # refuse a bad target before any file is written
        from clenv.sweep.aggregate import merged_table_text

        merged_table_text(args.out, "", args.section)
    if getattr(args, "dial", None):
        return _compare_dial(args, d, metrics)
    csv_text, md_text = compare_sweep(d, metrics=metrics, baseline=args.baseline,
                                      diff_metric=args.diff_metric, sort=args.sort,
                                      ascending=args.ascending, all_configs=args.all)
    print(csv_text if args.format == "csv" else md_text, end="")
    print(f"wrote {Path(d) / CSV_NAME} and {Path(d) / MD_NAME}")
    if getattr(args, "out", None):
        from clenv.sweep.aggregate import write_table_into

        print(f"wrote {write_table_into(args.out, md_text, args.section)}")
    return 0


def _compare_dial(args: argparse.Namespace, d: str, metrics: list[str] | None) -> int:
    from clenv.sweep.dial import dial_lines, dial_table

    if not args.baseline:
        raise UserError("--dial needs --baseline AXIS=VALUE, e.g. strategy.query=random")
    text = "\n".join(dial_table(dial_lines(d, args.dial, args.baseline, m), args.dial, m,
                                args.baseline) for m in metrics or ["final_accuracy"])
    print(text, end="")
    if getattr(args, "out", None):
        from clenv.sweep.aggregate import write_table_into

        print(f"wrote {write_table_into(args.out, text, args.section)}")
    return 0


def cmd_plot_sweep(args: argparse.Namespace) -> int:
    from clenv.results import figure_out
    from clenv.sweep.plots import plot_sweep

    d = args.dirs[0]
    if getattr(args, "dial", None):
        from clenv.sweep.dial import plot_dial

        metrics = ([m.strip() for m in args.metrics.split(",")] if args.metrics
                   else ["final_accuracy"])
        out = figure_out(args.out, Path(d) / "dial.png")
        plot_dial(d, out, args.dial, args.baseline or "", metrics)
        print(f"wrote {out}")
        return 0
    out = figure_out(args.out, Path(d) / "curves.png")
    plot_sweep(d, out)
    print(f"wrote {out}")
    return 0
