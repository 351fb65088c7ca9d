"""clenv: a continual-learning simulation environment.

``clenv.make(config_or_path, **overrides)`` returns the gymnasium Env of a scenario; the
ready root-free scenarios are also registered as gymnasium ids
(``gymnasium.make("clenv/Quickstart-v0")``).
Importing clenv imports gymnasium (to register the ids) but not torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clenv.version import __version__  # noqa: F401 (the package attribute)

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
STRATEGY_DIR = Path(__file__).resolve().parent.parent / "strategies"

# gymnasium id -> ready scenario file (the ones that need no data root)
GYM_IDS = {
    "clenv/Quickstart-v0": "quickstart.yaml",
    "clenv/IBlurryDigits-v0": "iblurry_digits.yaml",
}


def _flatten(prefix: str, value: Any) -> list[str]:
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out += _flatten(f"{prefix}.{k}" if prefix else k, v)
        return out
    import yaml

    return [f"{prefix}={yaml.safe_dump(value, default_flow_style=True).strip()}"
            .removesuffix("\n...")]


def make(config_or_path: Any, **overrides: Any):
    """Build the ContinualEnv of a config (a path, a dict, or a ready scenario's name).

    Keyword overrides use ``__`` for nesting: ``make("quickstart", scenario__n_tasks=3)``.
    """
    from clenv.config.loader import load_config
    from clenv.runner import Run

    source = config_or_path
    if isinstance(source, str) and not Path(source).exists():
        ready = SCENARIO_DIR / (source if source.endswith(".yaml") else f"{source}.yaml")
        if ready.is_file():
            source = str(ready)
    sets = []
    for key, value in overrides.items():
        sets += _flatten(key.replace("__", "."), value)
    cfg = load_config(source, overrides=sets)
    return Run(cfg).env


def register_envs() -> None:
    """Register the ready root-free scenarios as gymnasium ids (idempotent)."""
    import gymnasium

    for env_id, file in GYM_IDS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(env_id, entry_point="clenv:_make_registered",
                               kwargs={"config_or_path": str(SCENARIO_DIR / file)})


def _make_registered(config_or_path: str, **kwargs: Any):
    return make(config_or_path, **kwargs)


register_envs()
