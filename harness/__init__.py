"""genbench: one harness for autoregressive, masked and diffusion generative models."""
from genbench import _compat

_compat.make_torchvision_importable()

__version__ = "0.1.0"

# `genbench.registry.ADAPTERS.register(...)` works after a bare `import genbench` (it imports only the stdlib)
from genbench import registry  # noqa: E402,F401
