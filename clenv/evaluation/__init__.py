"""Evaluation: one Evaluator per family over the pool's test rows (docs/design.md, "Layers")."""
