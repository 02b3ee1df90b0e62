"""``ENGINE = "dbrouting.backends.postgresql"`` for replica aliases: see ``base.py``."""
