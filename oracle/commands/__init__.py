"""Command groups of the ``bme-oracle`` CLI; each module exposes ``register(subparsers)``."""
