"""Fabric entry point: the commands live in the `tasks` package (see README.md)."""
import sys

# Invoke turns off bytecode caching before it loads this file (its --write-pyc flag), so every
# `fab` run would compile the ~100 modules of `tasks` from source again (a quarter of a second
# here). __pycache__/ is git-ignored: let Python cache them, unless the user's environment
# (PYTHONDONTWRITEBYTECODE) or flags say otherwise.
if not sys.flags.dont_write_bytecode:
    sys.dont_write_bytecode = False

from tasks import ns  # noqa: F401,E402
