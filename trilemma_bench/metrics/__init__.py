"""Metrics as pure functions on feature tensors: quality (FID, KID, precision), diversity (recall,
density, coverage, mode statistics) and their bootstrap spread.

Feature extractors live apart (``features.py``) and are deliberately not re-exported here, so that
importing the metrics never loads a network.
"""

from .fid import feature_stats, fid, fid_from_stats, frechet_distance, kid
from .modes import modes_stacked, modes_toy2d
from .prdc import prdc
from .spread import bootstrap

__all__ = [
    "bootstrap",
    "feature_stats",
    "fid",
    "fid_from_stats",
    "frechet_distance",
    "kid",
    "modes_stacked",
    "modes_toy2d",
    "prdc",
]
