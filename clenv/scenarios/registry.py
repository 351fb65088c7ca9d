"""Registered scenario generators: name -> its config fields, builder and a one-line doc."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from clenv.config.schema import Field, describe, validate
from clenv.errors import ConfigError
from clenv.scenarios import agcd, from_file, hle, incremental, lifelong, mlcil, plasticity


@dataclass(frozen=True)
class Generator:
    """A generator: its fields, builder and doc; ``check(section, key)`` holds the section's
    cross-field rules (ConfigError), run by the typed model (clenv.config.typed) after the
    fields validate."""

    name: str
    fields: dict[str, Field]
    build: Callable
    doc: str
    check: Callable[[dict, str], None] | None = incremental.check_stream_keys


def _fields(*extra: str, drop: tuple[str, ...] = ()) -> dict[str, Field]:
    specific = {"blurry", "disjoint_percent", "blurry_percent", "convention"}
    return {k: f for k, f in incremental.COMMON_FIELDS.items()
            if (k not in specific or k in extra) and k not in drop}


GENERATORS: dict[str, Generator] = {
    "disjoint": Generator("disjoint", _fields(), incremental.build_incremental,
                          incremental.GENERATORS["disjoint"]),
    "blurry": Generator("blurry", _fields("blurry", "convention"), incremental.build_incremental,
                        incremental.GENERATORS["blurry"]),
    "lifelong": Generator("lifelong", lifelong.LIFELONG_FIELDS, lifelong.build_lifelong,
                          "lifelong segments: classes, revisit, drift, domain, few_shot, "
                          "related (Ling & Bohn 2021)", lifelong.check_lifelong),
    "plasticity": Generator("plasticity", plasticity.PLASTICITY_FIELDS,
                            plasticity.build_plasticity,
                            "long streams for loss of plasticity: permuted or random-label "
                            "tasks (Dohare et al. 2024)", plasticity.check_plasticity),
    "hle": Generator("hle", hle.HLE_FIELDS, hle.build_hle,
                     "hierarchical label expansion (Lee et al. 2023): dual_label, single_label, "
                     "multi_depth"),
    "mlcil": Generator("mlcil", mlcil.MLCIL_FIELDS, mlcil.build_mlcil,
                       "multi-label class-incremental (B0-Cn, Bk-Cn; partial labels)"),
    "iblurry": Generator("iblurry", _fields("disjoint_percent", "blurry_percent", "convention",
                                              drop=("classes_per_task",)),
                         incremental.build_incremental, incremental.GENERATORS["iblurry"]),
    "from_file": Generator("from_file", from_file.FROM_FILE_FIELDS, from_file.build_from_file,
                           "official split files as a stream (format: iblurry, rainbow, hle), "
                           "in the files' order"),
    "agcd": Generator("agcd", agcd.AGCD_SCENARIO_FIELDS, agcd.build_agcd,
                      "active generalized category discovery (Ma et al. 2024): old/new "
                      "classes, query rounds with a label budget (not a stream)",
                      agcd.check_agcd_scenario),
}


def validate_scenario(section: dict | None, key: str = "scenario") -> dict:
    """Validate a scenario section against its generator's fields (defaults filled, lifelong
    references resolved); its cross-field rules (``Generator.check``) run in the typed model
    (clenv.config.typed.check_config), which load_config calls."""
    section = dict(section or {})
    name = section.get("generator", "disjoint")
    if name not in GENERATORS:
        raise ConfigError(f"{key}.generator", f"unknown generator {describe(name)}",
                          f"expected one of: {', '.join(GENERATORS)}")
    if name == "lifelong":
        return lifelong.validate_lifelong(section, key)
    return validate(section, GENERATORS[name].fields, key)


def build_stream(pool, cfg: dict, key: str = "scenario"):
    """Build the Stream a validated scenario section describes."""
    return GENERATORS[cfg["generator"]].build(pool, cfg, key)
