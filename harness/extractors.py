"""Moved to ``genbench.features`` (one module per role); this name stays for branches in flight.
Import from ``genbench.features.*`` in new code."""
from genbench.features.build import build_extractor, extractor_identity  # noqa: F401
from genbench.features.extractor_base import ResizingExtractor  # noqa: F401
from genbench.features.extractor_clip import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ClipExtractor  # noqa: F401
from genbench.features.extractor_inception import (SPATIAL_LAYER, InceptionExtractor,  # noqa: F401
                                                   spatial_to_features)
from genbench.features.extractor_torchscript import TorchScriptExtractor  # noqa: F401
from genbench.features.resize import (RESIZE_MODES, clean_resize, clip_resize, legacy_pytorch_resize,  # noqa: F401
                                      tf1_resize)
from genbench.features.weights import (INCEPTION_ENV, KNOWN_INCEPTION_WEIGHTS, InceptionWeights,  # noqa: F401
                                       file_sha256, find_inception_weights, inception_candidates)
