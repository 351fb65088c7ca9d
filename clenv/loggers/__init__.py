"""Loggers: ``output.loggers: [tensorboard, csv]`` (or ``clenv run --logger NAME``) writes every
evaluation of a stream run as TensorBoard scalars and as a flat CSV. A logger subscribes to the
records that go to events.jsonl (clenv.events.EventLog), so what it writes is a function of the
log, like metrics.json. Importing this package imports neither torch nor tensorboard."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from clenv.errors import ConfigError, UserError

# name -> (module:class, the package it needs)
LOGGERS: dict[str, tuple[str, str | None]] = {
    "tensorboard": ("clenv.loggers.tensorboard_logger:TensorBoardLogger", "tensorboard"),
    "csv": ("clenv.loggers.csv_logger:CsvLogger", None),
}
# what the loggers write inside a results folder (files or folders), for clearing on re-run
LOGGER_FILES: tuple[str, ...] = ("tensorboard", "evaluations.csv")


def check_loggers(names: list[str], key: str = "output.loggers") -> list[str]:
    """Validate logger names (unknown: ConfigError; a missing package: UserError naming the
    extra); duplicates dropped, order kept."""
    out: list[str] = []
    for i, name in enumerate(names):
        if name not in LOGGERS:
            raise ConfigError(f"{key}[{i}]", f"unknown logger {name!r}",
                              f"expected one of: {', '.join(LOGGERS)}")
        package = LOGGERS[name][1]
        if package is not None and importlib.util.find_spec(package) is None:
            raise UserError(f"{key}: the {name} logger needs the {package} package; "
                            "pip install 'clenv[loggers]'")
        if name not in out:
            out.append(name)
    return out


def open_loggers(names: list[str], out: Path, log) -> list:
    """Build the named loggers on results folder ``out``, feed them the records ``log`` holds
    already (a resumed run) and subscribe them to the records to come."""
    loggers = []
    for name in check_loggers(names):
        module, cls = LOGGERS[name][0].split(":")
        loggers.append(getattr(importlib.import_module(module), cls)(out))
    for logger in loggers:
        for record in log.records:
            logger(record)
        log.subscribe(logger)
    return loggers


def close_loggers(loggers: list) -> None:
    for logger in loggers:
        logger.close()
