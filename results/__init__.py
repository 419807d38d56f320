"""The default results store (``results/runs/``) and published reference numbers.

``genbench.results.load(*dirs)`` merges run directories into one DataFrame.
"""
from genbench.store import load

__all__ = ["load"]
