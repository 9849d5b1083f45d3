"""builder: reuse a cached base image when the code is on a registered repository."""

__version__ = "0.1.0"
