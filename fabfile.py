"""Fabric entry point: the commands live in the `tasks` package (see README.md)."""
from tasks import ns  # noqa: F401
