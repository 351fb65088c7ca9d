"""Sweep files: a base config plus axes, expanded into runs with stable ids.

A sweep YAML holds ``base`` (a config path, relative to the sweep file, or an inline mapping),
optional ``set`` (fixed dotted-key overrides; relative paths in ``set`` and ``axes`` values join
the sweep file's folder, those in the base file its own folder), the axes — ``strategies``
(presets or mappings), ``seeds`` (each sets ``seed`` and ``scenario.seed``, so every method sees
the same streams per seed; ``seed_keys`` names other keys it sets too, e.g. ``data.seed``) and
``axes`` (dotted config key -> list of values) — the ``mode`` (grid: every combination; zip: the
non-replicate axes zipped, crossed with the replicate axes), the ``replicates`` (axes averaged
over by ``clenv compare``; default ``[seed]``), ``threads`` per run, ``workers`` (local
backend), ``resources`` (Ray backend) and an optional ``select`` (CL-legal hyper-parameter
selection, clenv.sweep.select). Every problem is one ConfigError naming the key.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clenv.config.loader import apply_override, load_config, parse_overrides, read_yaml
from clenv.config.schema import Field, describe, validate
from clenv.errors import ConfigError

SWEEP_FIELDS: dict[str, Field] = {
    "name": Field(str, None, "sweep name (default: the file's stem)"),
    "base": Field(object, None, "the base run config: a YAML path (relative to the sweep "
                  "file) or a mapping; a list of them is the `base` axis (one per scenario)"),
    "set": Field(dict, {}, "fixed overrides for every run: dotted key -> value"),
    "strategies": Field(list, None, "strategy axis: presets (strategies/*.yaml names) or "
                        "strategy mappings"),
    "seeds": Field(list, None, "seed axis: each value sets seed and scenario.seed", item=int,
                   min=0),
    "seed_keys": Field(list, ["seed", "scenario.seed"], "the config keys each seed value "
                       "sets (add data.seed to draw a fresh synthetic dataset per seed)",
                       item=str),
    "axes": Field(dict, {}, "dotted config key -> list of values"),
    "mode": Field(str, "grid", "grid: every combination; zip: the non-replicate axes zipped",
                  choices=("grid", "zip")),
    "replicates": Field(list, None, "axes that are replicates (default: [seed])", item=str),
    "threads": Field(int, 1, "torch threads per run", min=1),
    "workers": Field(int, None, "local backend: parallel runs (default: cores // threads)",
                     min=1),
    "resources": Field(dict, {}, "ray backend: resources per run, e.g. {cpus: 1, gpus: 0}"),
    "select": Field(dict, None, "hyper-parameter selection (CL-legal): metric, on, k, among"),
    "metrics": Field(list, None, "the metrics clenv compare shows by default", item=str),
}
RESOURCE_FIELDS: dict[str, Field] = {
    "cpus": Field(float, 1.0, "CPUs per run", min=0),
    "gpus": Field(float, 0.0, "GPUs per run", min=0),
}
SELECT_FIELDS: dict[str, Field] = {
    "metric": Field(str, "final_accuracy", "the metric to select on"),
    "on": Field(str, "validation", "validation: the held-out split (scenario.validation); "
                "first_tasks: the first k tasks only (Chaudhry et al. 2019)",
                choices=("validation", "first_tasks")),
    "k": Field(int, None, "first_tasks: the number of tasks", min=1),
    "among": Field(list, None, "the axes being tuned", item=str),
    "goal": Field(str, "max", "max or min of the metric", choices=("max", "min")),
}


@dataclass
class RunSpec:
    """One run of a sweep: its id, its axis values and its resolved config."""

    id: str
    params: dict[str, Any]
    config: dict


@dataclass
class Sweep:
    """A validated sweep: its axes, replicates and expanded runs."""

    name: str
    path: Path | None
    axes: dict[str, list]
    replicates: list[str]
    mode: str
    threads: int
    workers: int | None
    resources: dict
    select: dict | None
    runs: list[RunSpec] = field(default_factory=list)
    metrics: list[str] | None = None  # clenv compare's default columns
    seed_keys: tuple[str, ...] = ("seed", "scenario.seed")  # what a seed value sets

    def index(self) -> dict:
        """The static part of sweep.json."""
        return {"name": self.name, "mode": self.mode,
                "axes": {k: [_jsonable(v) for v in vals] for k, vals in self.axes.items()},
                "replicates": self.replicates, "select": self.select,
                "threads": self.threads, "resources": self.resources,
                **({"metrics": self.metrics} if self.metrics else {}),
                "runs": [{"id": r.id, "dir": f"runs/{r.id}", "params": r.params}
                         for r in self.runs]}


def _jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


def config_hash(cfg: dict) -> str:
    """sha256 of the canonical JSON of a resolved config without its output section (where
    results go does not change them); 10 hex digits."""
    body = {k: v for k, v in cfg.items() if k != "output"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _short(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("preset") or value.get("name") or "strategy"
        value = str(value).rsplit(":", 1)[-1]  # package.module:Class -> Class
    if isinstance(value, float):
        value = f"{value:g}"
    return re.sub(r"[^A-Za-z0-9.=+-]+", "-", str(value)).strip("-")[:24] or "x"


def run_id(params: dict[str, Any], cfg: dict) -> str:
    """A readable prefix (the axis values) and the config hash, e.g. ``er_lr0.05_s1_3fa9c01b2e``.
    The hash alone identifies the run: the same resolved config always gets the same id."""
    parts = []
    for k, v in params.items():
        if k == "strategy":
            parts.append(_short(v))
        elif k == "seed":
            parts.append(f"s{_short(v)}")
        elif k == "base":  # a scenario's name
            parts.append(_short(v))
        else:
            parts.append(f"{k.rsplit('.', 1)[-1]}{_short(v)}")
    prefix = "_".join(parts)[:60]
    return f"{prefix}_{config_hash(cfg)}" if prefix else config_hash(cfg)


def _path_of(key: str, where: str) -> list:
    if not isinstance(key, str) or not key.strip() or "=" in key:
        raise ConfigError(where, "expected a dotted config key such as strategy.lr, got "
                          f"{describe(key)}")
    return parse_overrides([f"{key}="])[0][0]


def _dotted_key(key: str) -> str:
    """A sweep key (``a.b``, ``a[2].b`` or ``a.2.b``) in the form config validation names it."""
    from clenv.config.loader import _dotted

    return _dotted(_path_of(key, key))


def load_sweep(source: str | os.PathLike | dict) -> Sweep:
    """Validate a sweep (file or mapping) and expand it into runs (each config resolved and
    validated, so a bad value fails before anything runs)."""
    sweep_dir: Path | None = None
    if isinstance(source, dict):
        raw, name = copy.deepcopy(source), "sweep"
        path = None
    else:
        path = Path(source)
        raw = read_yaml(path, key="sweep")
        sweep_dir, name = path.expanduser().resolve().parent, path.stem
    if not isinstance(raw, dict):
        raise ConfigError("sweep", f"expected a mapping at the top level, got {describe(raw)}")
    s = validate(raw, SWEEP_FIELDS, "")
    base = s["base"]
    if base is None:
        raise ConfigError("base", "missing required key", "give a config path or mapping")
    if isinstance(base, list):  # the base axis: one base config per value
        if not base:
            raise ConfigError("base", "expected a non-empty list of configs",
                              "give one path or mapping per scenario")
        bases: dict[str, tuple[dict, Path | None]] = {}
        for i, b in enumerate(base):
            raw_i, dir_i = _read_base(b, f"base[{i}]", sweep_dir, f"{name}{i}")
            label = raw_i["name"]
            if label in bases:
                raise ConfigError(f"base[{i}]", f"a second base named {describe(label)}",
                                  "give each base config its own name")
            bases[label] = (raw_i, dir_i)
        base_raw, base_dir = next(iter(bases.values()))
    else:
        base_raw, base_dir = _read_base(base, "base", sweep_dir, name)
        bases = {}

    axes: dict[str, list] = {"base": list(bases)} if bases else {}
    if s["strategies"] is not None:
        axes["strategy"] = s["strategies"]
    for key, values in s["axes"].items():
        if key in ("strategy", "seed", "base") and key in axes:
            raise ConfigError(f"axes.{key}", "duplicates the strategies/seeds axis",
                              "give it once")
        _path_of(key, f"axes.{key}")
        axes[key] = values
    if s["seeds"] is not None:
        if "seed" in axes:
            raise ConfigError("seeds", "axes.seed is given too", "give the seeds once")
        axes["seed"] = s["seeds"]
    for key, values in axes.items():
        where = {"strategy": "strategies", "seed": "seeds"}.get(key, f"axes.{key}")
        if not isinstance(values, list) or not values:
            raise ConfigError(where, f"expected a non-empty list of values, got {describe(values)}")
    replicates = s["replicates"] if s["replicates"] is not None else (
        ["seed"] if "seed" in axes else [])
    for i, r in enumerate(replicates):
        if r not in axes:
            raise ConfigError(f"replicates[{i}]", f"{describe(r)} is not an axis",
                              f"use one of: {', '.join(axes) or '(no axes)'}")
    resources = validate(s["resources"], RESOURCE_FIELDS, "resources")
    select = None
    if s["select"] is not None:
        select = validate(s["select"], SELECT_FIELDS, "select")
        among = select["among"]
        if not among:
            raise ConfigError("select.among", "expected the list of axes to tune",
                              f"use some of: {', '.join(a for a in axes if a not in replicates)}")
        for i, a in enumerate(among):
            if a not in axes or a in replicates:
                raise ConfigError(f"select.among[{i}]",
                                  f"{describe(a)} is not a non-replicate axis",
                                  f"use some of: "
                                  f"{', '.join(a for a in axes if a not in replicates)}")
        if select["on"] == "first_tasks" and select["k"] is None:
            raise ConfigError("select.k", "on: first_tasks needs k, the number of tasks",
                              "set select.k: 2 for example")
    for i, key in enumerate(s["seed_keys"]):
        _path_of(key, f"seed_keys[{i}]")
    if "seed" not in s["seed_keys"]:
        raise ConfigError("seed_keys", f"expected a list holding seed (the learner's seed), "
                          f"got {describe(s['seed_keys'])}", "e.g. [seed, scenario.seed, "
                          "data.seed]")
    from clenv.results import check_folder_name

    check_folder_name(s["name"] or name)  # it decides results/sweeps/<name>
    sweep = Sweep(name=s["name"] or name, path=path, axes=axes, replicates=replicates,
                  mode=s["mode"], threads=s["threads"], workers=s["workers"],
                  resources=resources, select=select, metrics=s["metrics"],
                  seed_keys=tuple(s["seed_keys"]))
    sweep.runs = expand(sweep, base_raw, s["set"], base_dir, sweep_dir, bases=bases)
    if select is not None and select["on"] == "validation":
        for r in sweep.runs:
            if not r.config["scenario"].get("validation"):
                raise ConfigError("select.on", "validation needs a validation split",
                                  "set scenario.validation: 0.1 (in base or set)")
    return sweep


def _read_base(base: Any, key: str, sweep_dir: Path | None,
               default_name: str) -> tuple[dict, Path | None]:
    """(raw config, folder its relative paths join) of a base: a YAML path or a mapping."""
    if isinstance(base, str):
        bpath = Path(base).expanduser()
        if not bpath.is_absolute() and sweep_dir is not None:
            bpath = sweep_dir / bpath
        raw = read_yaml(bpath, key=key)
        base_dir: Path | None = bpath.resolve().parent
        default_name = bpath.stem
    elif isinstance(base, dict):
        raw, base_dir = copy.deepcopy(base), sweep_dir
    else:
        raise ConfigError(key, f"expected a config path or a mapping, got {describe(base)}")
    if not isinstance(raw, dict):
        raise ConfigError(key, "the base config must be a mapping")
    raw.setdefault("name", default_name)
    return raw, base_dir


def combinations(axes: dict[str, list], mode: str, replicates: list[str]) -> list[dict]:
    """The axis assignments: grid = product of every axis; zip = the non-replicate axes
    zipped (equal lengths), crossed with the product of the replicate axes. Order: axes as
    declared, the last varying fastest."""
    names = list(axes)
    if mode == "grid" or not axes:
        return [dict(zip(names, vals, strict=True))
                for vals in itertools.product(*(axes[n] for n in names))]
    zipped = [n for n in names if n not in replicates]
    lengths = {n: len(axes[n]) for n in zipped}
    if len(set(lengths.values())) > 1:
        raise ConfigError("mode", f"zip needs non-replicate axes of equal length, got "
                          f"{', '.join(f'{n}: {k}' for n, k in lengths.items())}",
                          "make the lists equally long or use mode: grid")
    reps = [n for n in names if n in replicates]
    heads = [dict(zip(zipped, vals, strict=True))
             for vals in zip(*(axes[n] for n in zipped), strict=True)] if zipped else [{}]
    out = []
    for h in heads:
        for vals in itertools.product(*(axes[n] for n in reps)):
            out.append({**h, **dict(zip(reps, vals, strict=True))})
    return [{n: c[n] for n in names} for c in out]


def _where(params: dict) -> str:
    def show(v: Any) -> str:
        if isinstance(v, dict):
            return _short(v)
        return f"{v:g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{k}={show(v)}" for k, v in params.items())


def expand(sweep: Sweep, base: dict, fixed: dict, base_dir: Path | None,
           sweep_dir: Path | None = None,
           bases: dict[str, tuple[dict, Path | None]] | None = None) -> list[RunSpec]:
    """Resolve and validate the config of every axis assignment; assign ids. Relative paths
    join ``base_dir`` (the base config's folder), those the sweep sets (``set``, axes) join
    ``sweep_dir`` (None: the working directory). With a ``base`` axis, ``bases`` maps each of
    its values to (config, folder) and replaces ``base`` and ``base_dir`` per run."""
    from clenv.config.loader import resolve_strategy

    anchor = sweep_dir if sweep_dir is not None else Path.cwd()
    anchors = {_dotted_key(k): anchor for k in [*fixed, *sweep.axes]
               if k not in ("seed", "base")}
    runs: list[RunSpec] = []
    seen: dict[str, dict] = {}
    for params in combinations(sweep.axes, sweep.mode, sweep.replicates):
        if bases and "base" in params:
            base, base_dir = bases[params["base"]]
        raw = copy.deepcopy(base)
        if isinstance(raw.get("strategy"), str):
            raw["strategy"] = {"preset": raw["strategy"]}
        if "strategy" in params:  # first, so that set and axes can refine it
            value = params["strategy"]
            raw["strategy"] = ({"preset": value} if isinstance(value, str)
                               else copy.deepcopy(value))
        for key, value in fixed.items():
            apply_override(raw, _path_of(key, f"set.{key}"), copy.deepcopy(value))
        for key, value in params.items():
            if key in ("strategy", "base"):
                continue
            if key == "seed":  # paired seeds: the learner's and the stream's (seed_keys)
                for target in sweep.seed_keys:
                    apply_override(raw, _path_of(target, "seed_keys"), value)
            else:
                apply_override(raw, _path_of(key, f"axes.{key}"), copy.deepcopy(value))
        raw["threads"] = sweep.threads
        try:
            if isinstance(raw.get("strategy"), dict) and "preset" in raw["strategy"]:
                raw["strategy"] = resolve_strategy(raw["strategy"], base_dir)
            cfg = load_config(raw, base_dir=base_dir, path_anchors=anchors)
        except ConfigError as exc:
            raise ConfigError(f"run ({_where(params)})", str(exc)) from None
        rid = run_id(params, cfg)
        if rid in seen:
            raise ConfigError("axes", f"runs ({_where(seen[rid])}) and ({_where(params)}) have "
                              "the same resolved config", "remove the duplicate axis values")
        seen[rid] = params
        runs.append(RunSpec(rid, {k: _jsonable(v) for k, v in params.items()}, cfg))
    return runs
