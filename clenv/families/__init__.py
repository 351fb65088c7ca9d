"""Problem families: one Family record each, chosen once per run (docs/design.md, "Families")."""
