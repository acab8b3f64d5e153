"""``cupy.lib`` stand-in."""

from . import stride_tricks  # noqa: F401
