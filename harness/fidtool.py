"""Moved to ``genbench.features`` (one module per role); this name stays for branches in flight.
Import from ``genbench.features.*`` in new code."""
from genbench.features.cache import CACHE_ENV, cache_key, default_cache_dir, write_statistics_npz  # noqa: F401
from genbench.features.commands import add_commands, main, result_to_text  # noqa: F401
from genbench.features.fid import (METRICS, PROTOCOL_N, compute_fid, compute_inception_score,  # noqa: F401
                                   parse_metrics, protocol_warnings, statistics_origin, statistics_to_metrics)
from genbench.features.statistics import (Statistics, logits_status, path_to_features,  # noqa: F401
                                          path_to_statistics, spatial_status)
