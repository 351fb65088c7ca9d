"""Scenario generators: each turns a Pool into a Stream."""
