"""Toolkit version, recorded in every saved result."""

__version__ = "0.1.0"
FORMAT_VERSION = 1
