"""Load, merge and validate a run config: YAML file or dict, strategy presets, ``--set``
overrides. Every problem is a ConfigError naming the dotted key path.

Path fields (schema kind PATH) are made absolute: relative paths written in a YAML file join that
file's folder, ``--set`` paths join the working directory, so the saved config.yaml (and
``--resume``) works from anywhere."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml

from clenv.config.schema import check_value, describe, path_bases, validate
from clenv.config.sections import (
    BUDGET_FIELDS,
    EVAL_FIELDS,
    OUTPUT_FIELDS,
    TOP_FIELDS,
    VALIDATION_FIELD,
)
from clenv.errors import ConfigError
from clenv.loggers import check_loggers

DEFAULT_DATA = {"source": "synthetic"}
DEFAULT_STRATEGY = {"name": "naive"}


MAX_CONFIG_BYTES = 2**20  # 1 MiB: a config or sweep file
MAX_YAML_NODES = 100_000  # nodes of one YAML document, every alias counted at each use


def read_yaml(path: str | os.PathLike, key: str = "config") -> Any:
    """A config or sweep file's YAML document: at most 1 MiB of UTF-8 text and 100k nodes
    after alias expansion (checked before any Python object is built)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(key, f"file not found: {path}", "give the path of a YAML file")
    with open(path, "rb") as fh:
        data = fh.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(key, f"{path} is larger than the limit of 1 MiB "
                          f"({MAX_CONFIG_BYTES} bytes) for a config file",
                          "keep large data in data files, not in the config")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(key, f"{path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at "
                          f"offset {exc.start})", "save the file as UTF-8") from None
    return parse_yaml(text, str(path), key)


def parse_yaml(text: str, where: str, key: str) -> Any:
    """``yaml.safe_load(text)`` refusing documents over MAX_YAML_NODES nodes after alias
    expansion: the size is counted on the composed node graph (each node once, memoised), so
    an alias bomb is refused without being expanded."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if yaml_size(node, MAX_YAML_NODES) > MAX_YAML_NODES:
            raise ConfigError(key, f"{where} expands to more than {MAX_YAML_NODES} YAML nodes "
                              f"(every alias counted at each use); the limit is "
                              f"{MAX_YAML_NODES} nodes", "remove repeated aliases or trim it")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(key, f"YAML syntax error in {where}{at}: {problem}",
                          "fix the YAML syntax") from None
    except RecursionError:
        raise ConfigError(key, f"{where} is nested too deeply", "flatten it") from None
    finally:
        loader.dispose()


def yaml_size(root: yaml.Node, limit: int) -> int:
    """Nodes of ``root`` with every alias expanded, counted without expanding: each distinct
    node's size is computed once (memoised by id). Stops above ``limit``; a node that
    contains itself (a recursive alias) counts as over the limit."""
    memo: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        k = id(node)
        if k in memo:
            return memo[k]
        if k in active:  # a recursive alias expands forever
            return limit + 1
        active.add(k)
        n = 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [c for pair in node.value for c in pair]
        else:
            children = []
        for child in children:
            n += size(child)
            if n > limit:
                break
        active.discard(k)
        memo[k] = n = min(n, limit + 1)
        return n

    return size(root)


def parse_overrides(items: list[str] | None) -> list[tuple[list[str | int], Any]]:
    """``a.b=value`` strings -> (path, YAML-parsed value); list items as ``a[2].b`` or
    ``a.2.b``."""
    out = []
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--set", f"expected KEY=VALUE, got {describe(item)}",
                              "write e.g. --set scenario.n_tasks=5")
        try:
            value = parse_yaml(raw, "--set", "--set") if raw.strip() else None
        except ConfigError as exc:
            if "YAML syntax error" not in str(exc):
                raise
            value = raw
        path: list[str | int] = []
        for part in re.split(r"\.|(?=\[)", key.strip()):
            m = re.fullmatch(r"\[(\d+)\]", part)
            path.append(int(m.group(1)) if m else int(part) if part.isdigit() else part)
        out.append((path, value))
    return out


def _dotted(path: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def apply_override(cfg: dict, path: list[str | int], value: Any) -> None:
    node: Any = cfg
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(part, int):
            if not isinstance(node, list) or not -len(node) <= part < len(node):
                raise ConfigError(_dotted(path[: i + 1]), "no such list item",
                                  f"cannot set {_dotted(path)}")
        elif not isinstance(node, dict):
            raise ConfigError(_dotted(path[:i]), "is not a mapping",
                              f"cannot set {_dotted(path)}")
        if last:
            node[part] = value
        else:
            nxt = node[part] if isinstance(part, int) else node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            node = nxt


def strategy_search_dirs(config_dir: Path | None) -> list[Path]:
    dirs = []
    if config_dir is not None:
        dirs += [config_dir / "strategies", config_dir.parent / "strategies"]
    dirs.append(Path.cwd() / "strategies")
    dirs.append(Path(__file__).resolve().parents[2] / "strategies")
    return dirs


def resolve_strategy(spec: Any, config_dir: Path | None, key: str = "strategy") -> dict:
    """A strategy section from a dict, a registered name or a preset (strategies/*.yaml).

    ``{preset: er, lr: 0.1}`` merges the preset's keys with the given ones.
    """
    from clenv.strategies.registry import STRATEGIES

    if isinstance(spec, str):
        spec = {"preset": spec}
    if not isinstance(spec, dict):
        raise ConfigError(key, f"expected a mapping or a preset name, got {describe(spec)}")
    spec = dict(spec)
    preset = spec.pop("preset", None)
    if preset is None:
        return spec
    if not isinstance(preset, str):
        raise ConfigError(f"{key}.preset",
                          f"expected a preset name or file, got {describe(preset)}")
    path = Path(preset).expanduser()
    candidates = [path] if path.suffix in (".yaml", ".yml") else []
    candidates += [d / f"{preset}.yaml" for d in strategy_search_dirs(config_dir)]
    for c in candidates:
        if c.is_file():
            base = read_yaml(c, key=f"{key}.preset")
            if isinstance(base, dict) and "strategy" in base:
                if len(base) > 1:  # a key beside the section would be silently dropped
                    extra = sorted(k for k in base if k != "strategy")
                    raise ConfigError(f"{key}.preset", f"{c} holds {', '.join(extra)} beside "
                                      "its strategy section", "move them into the section")
                base = base["strategy"]
            if not isinstance(base, dict):
                raise ConfigError(f"{key}.preset", f"{c} does not hold a strategy mapping")
            return {**base, **spec}
    if preset in STRATEGIES:
        return {"name": preset, **spec}
    raise ConfigError(f"{key}.preset", f"no preset {describe(preset)} (looked for "
                      f"{describe(preset)}.yaml in strategies/) and no registered strategy of "
                      "that name",
                      f"use one of: {', '.join(STRATEGIES)} or a strategies/*.yaml file")


def load_config(source: str | os.PathLike | dict, overrides: list[str] | None = None,
                strategy: str | None = None, seed: int | None = None, *,
                base_dir: str | os.PathLike | None = None,
                path_anchors: dict[str, str | os.PathLike] | None = None,
                loggers: list[str] | None = None) -> dict:
    """Return the fully resolved, validated config (re-running it reproduces the run).

    Relative path values join the config file's folder (a mapping: ``base_dir``, default the
    working directory); those set by ``overrides`` join the working directory, and those under
    a key of ``path_anchors`` (dotted key -> folder) join that folder. ``loggers`` (``clenv run
    --logger``) are added to output.loggers."""
    anchors = dict(path_anchors or {})
    for path, _ in parse_overrides(overrides):
        anchors[_dotted(path)] = Path.cwd()
    if not isinstance(source, dict):
        base_dir = Path(source).expanduser().resolve().parent
    with path_bases(base_dir, anchors):
        return _load_config(source, overrides, strategy, seed, loggers or [])


def _load_config(source: str | os.PathLike | dict, overrides: list[str] | None,
                 strategy: str | None, seed: int | None, loggers: list[str]) -> dict:
    from clenv.models.registry import validate_model
    from clenv.strategies.registry import validate_strategy

    raw, config_dir, default_name = _read_raw(source, overrides, strategy, seed)
    cfg = validate(raw, TOP_FIELDS, "")
    cfg["name"] = cfg["name"] or default_name
    check_folder_name(cfg["name"])  # it decides results/<name>
    _scenario_section(cfg)
    _data_section(cfg)
    strat = resolve_strategy(cfg["strategy"] or DEFAULT_STRATEGY, config_dir)
    cfg["strategy"] = validate_strategy(strat, "strategy")
    cfg["model"] = validate_model(cfg["model"], "model")
    cfg["eval"] = validate(cfg["eval"], EVAL_FIELDS, "eval")
    cfg["budget"] = validate(cfg["budget"], BUDGET_FIELDS, "budget")
    cfg["output"] = validate(cfg["output"], OUTPUT_FIELDS, "output")
    cfg["output"]["loggers"] = check_loggers([*cfg["output"]["loggers"], *loggers])
    dev = cfg["device"]
    if dev not in ("cpu", "cuda", "auto") and not dev.startswith("cuda:"):
        raise ConfigError("device", f"expected cpu, cuda, cuda:N or auto, got {describe(dev)}")
    if dev.startswith("cuda"):  # torch is imported only when a GPU is asked for
        check_cuda(dev)
    _typed_checks(cfg)
    if "agcd" in (cfg["scenario"]["generator"], cfg["strategy"]["name"]):
        return _agcd_checks(cfg)
    return _pairing_checks(cfg)


def _read_raw(source: str | os.PathLike | dict, overrides: list[str] | None,
              strategy: str | None, seed: int | None) -> tuple[dict, Path | None, str]:
    """The raw mapping with --strategy, --set and --seed applied, the config's folder (for
    relative paths) and the default run name."""
    config_dir: Path | None = None
    if isinstance(source, dict):
        raw = copy.deepcopy(source)
        default_name = "run"
    else:
        raw = read_yaml(source)
        config_dir = Path(source).expanduser().resolve().parent
        default_name = Path(source).stem
        if raw is None:  # an empty file (or only comments) is almost surely a mistake
            raise ConfigError(str(source), "config is empty",
                              "write at least a scenario section (see scenarios/quickstart.yaml)")
    if not isinstance(raw, dict):
        raise ConfigError("config", f"expected a mapping at the top level, got {describe(raw)}")
    if strategy is not None:  # --strategy replaces the config's strategy; --set refines it
        raw["strategy"] = {"preset": strategy}
    elif isinstance(raw.get("strategy"), str):
        raw["strategy"] = {"preset": raw["strategy"]}
    for path, value in parse_overrides(overrides):
        apply_override(raw, path, value)
    if seed is not None:
        raw["seed"] = seed
    return raw, config_dir, default_name


def _scenario_section(cfg: dict) -> None:
    """The scenario section against its generator, the held-out split, split files' data."""
    from clenv.scenarios.registry import validate_scenario

    scenario = dict(cfg["scenario"])
    validation = scenario.pop("validation", None)  # a held-out split (clenv.validation)
    cfg["scenario"] = validate_scenario(scenario, "scenario")
    if validation:  # kept only when set, so configs without it are unchanged
        cfg["scenario"]["validation"] = check_value(validation, VALIDATION_FIELD,
                                                    "scenario.validation")
    if cfg["scenario"]["generator"] == "from_file":  # the split files name the images
        from clenv.scenarios.from_file import data_section

        cfg["data"] = data_section(cfg["scenario"], cfg["data"])


def _data_section(cfg: dict) -> None:
    """The data section against its source's fields (its data-free ``check`` runs in the typed
    model, clenv.config.typed)."""
    from clenv.data.registry import SOURCES

    data = dict(cfg["data"] or DEFAULT_DATA)
    src = data.get("source")
    if src not in SOURCES:
        raise ConfigError("data.source", f"unknown data source {describe(src)}",
                          f"expected one of: {', '.join(SOURCES)}")
    params = {k: v for k, v in data.items() if k != "source"}
    cfg["data"] = {"source": src, **validate(params, SOURCES[src].fields, "data")}


def _typed_checks(cfg: dict) -> None:
    """The resolved config against its typed model (clenv.config.typed): every section's
    types and the rules declared beside its fields (a generator's, source's or strategy's
    ``check``), one ConfigError line."""
    from clenv.config.typed import check_config

    check_config(cfg)


def _agcd_checks(cfg: dict) -> dict:
    """Rules of agcd runs (query rounds, not a stream)."""
    from clenv.agcd.config import check_agcd_config

    if cfg["output"]["loggers"]:
        raise ConfigError("output.loggers", "the loggers write the evaluations of stream "
                          "runs; an agcd run has query rounds instead",
                          "remove output.loggers (rounds are in events.jsonl and "
                          "metrics.json)")
    return check_agcd_config(cfg)


def _pairing_checks(cfg: dict) -> dict:
    """Cross-section rules: what a strategy needs of the scenario."""
    name, gen = cfg["strategy"]["name"], cfg["scenario"]["generator"]
    if cfg["eval"]["reference"] == "joint" and gen in ("lifelong", "mlcil", "plasticity"):
        raise ConfigError("eval.reference", f"the joint reference (intransigence) needs task "
                          f"columns trained in their own row; {gen} streams have none",
                          "remove eval.reference")
    check_strategy_needs(cfg)
    if name == "multilane" and cfg["scenario"]["boundaries"] != "exposed":
        raise ConfigError("strategy.name", "multilane opens one lane per task and needs "
                          "scenario.boundaries: exposed", "set scenario.boundaries: exposed")
    if name == "plfms" and gen == "mlcil":
        raise ConfigError("strategy.name", "plfms is for single-label and hierarchical streams, "
                          "not multi-label ones", "use er, naive, joint or multilane")
    if cfg["strategy"]["name"] == "joint" and cfg["scenario"]["boundaries"] != "exposed":
        raise ConfigError("strategy.name", "joint retrains at task ends and needs "
                          "scenario.boundaries: exposed", "set scenario.boundaries: exposed")
    if name == "avalanche":  # class name and args (imports avalanche-lib)
        from clenv.avalanche.catalog import check_section

        check_section(cfg["strategy"])
        if gen in ("hle", "mlcil") or cfg["scenario"].get("format") == "hle":  # from_file
            raise ConfigError("strategy.name", f"the avalanche adapter runs single-label "
                              f"streams; {gen} streams are hierarchical or multi-label",
                              "use another scenario, or export an hle stream with "
                              "clenv.avalanche.to_benchmark")
        if cfg["strategy"]["mode"] == "offline" and cfg["scenario"]["boundaries"] != "exposed":
            raise ConfigError("strategy.mode", "offline trains one Avalanche experience per "
                              "task and needs scenario.boundaries: exposed",
                              "set scenario.boundaries: exposed or strategy.mode: online")
    return cfg


def check_cuda(device: str) -> None:
    """Refuse ``cuda`` / ``cuda:N`` when no such CUDA device is visible (imports torch)."""
    index = device.partition(":")[2]
    if index and not index.isdigit():
        raise ConfigError("device", f"expected cuda:N with N a number, got {describe(device)}")
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if int(index or 0) >= n:
        seen = "no CUDA GPU is visible" if n == 0 else f"only {n} CUDA device(s) are visible"
        raise ConfigError("device", f"{device} asked, but {seen}", "use device: cpu or auto")


def check_strategy_needs(cfg: dict) -> None:
    """What a strategy's setup or the checkpointer would refuse, checked on the config (no
    torch for registered strategies): multilane's ViT, the forgetting plug-in's per-task
    count, and checkpoint support."""
    from clenv.strategies.registry import STRATEGIES, strategy_class

    s, sc = cfg["strategy"], cfg["scenario"]
    name = s["name"]
    if name == "multilane" and cfg["model"]["name"] != "vit":
        raise ConfigError("model.name", "multilane needs a ViT backbone",
                          "set model: {name: vit, ...}")
    forgetting = s.get("forgetting")
    if (isinstance(forgetting, dict) and forgetting.get("schedule") == "temporary"
            and forgetting.get("per") == "task" and sc["boundaries"] != "exposed"):
        raise ConfigError("strategy.forgetting.per", "counting steps per task needs task "
                          "boundaries, which this scenario hides",
                          "set per: run or scenario.boundaries: exposed")
    if name in TASK_END_STRATEGIES and sc.get("boundaries", "exposed") != "exposed":
        raise ConfigError("strategy.name", f"{name} consolidates at task ends and needs them "
                          "exposed", "set scenario.boundaries: exposed")
    if cfg["output"].get("checkpoint_every"):
        if name in STRATEGIES:
            ok = name not in NO_CHECKPOINTS
        else:
            from clenv.strategies.base import supports_checkpoint_class

            ok = supports_checkpoint_class(strategy_class(name, "strategy.name"))
        if not ok:
            raise ConfigError("output.checkpoint_every", f"strategy {name} does not support "
                              "checkpoints (no state_dict/load_state_dict)",
                              "remove output.checkpoint_every, or implement them")


# registered strategies without the state protocol (checkpoints and --resume)
NO_CHECKPOINTS = ("avalanche", "agcd")
# registered strategies that consolidate at task ends (refused with hidden boundaries)
TASK_END_STRATEGIES = ("lwf", "ewc", "si", "mas", "bic", "rainbow")


def dump_config(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)


def check_folder_name(name, key: str = "name") -> None:
    """A name that decides a results folder (results/<name>) must be one plain folder name."""
    text = str(name)
    if (not text or text in (".", "..") or "/" in text or "\\" in text or "\0" in text
            or len(text.encode()) > 255):
        raise ConfigError(key, f"expected a plain folder name (no '/', '\\', '..'), got "
                          f"{text[:60]!r}; it names the results folder",
                          "give a name like split_mnist_er, or choose the folder with --out")
