"""How the supervised strategies train: optimisers, learning-rate schedules (including CLIB's
adaptive rate) and seeded augmentation. The YAML sections are validated torch-free in
``clenv.training.config``."""
