"""Plug-ins any supervised strategy accepts from YAML (active/temporary forgetting)."""
