"""Text embeddings: the offline sentence encoder and class-name vectors cached on disk (used by
the language head and by the semantic source's alignment dial; imports no torch until a model
is loaded)."""
