"""genbench: one harness for autoregressive, masked and diffusion generative models."""
from genbench import _compat

_compat.make_torchvision_importable()

__version__ = "0.1.0"
