"""Metrics as pure functions on feature tensors: quality (FID, KID, precision), diversity (recall,
density, coverage, mode statistics, Vendi), memorisation (copy share) and their bootstrap spread.

Feature extractors live apart (``features.py``) and are deliberately not re-exported here, so that
importing the metrics never loads a network.
"""

from .fid import feature_stats, fid, fid_from_stats, frechet_distance, kid
from .memorization import copy_share
from .modes import floor_text, modes_stacked, modes_toy2d, perfect_model_floor
from .prdc import knn_radii, prdc
from .spread import bootstrap
from .vendi import vendi

__all__ = [
    "bootstrap",
    "copy_share",
    "feature_stats",
    "fid",
    "fid_from_stats",
    "floor_text",
    "frechet_distance",
    "kid",
    "knn_radii",
    "modes_stacked",
    "modes_toy2d",
    "perfect_model_floor",
    "prdc",
    "vendi",
]
