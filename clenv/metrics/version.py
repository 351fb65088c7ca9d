"""The version of metrics.json's layout and definitions (bumped when a definition changes)."""

METRICS_VERSION = 2
