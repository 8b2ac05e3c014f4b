"""OpticLink: a video management core for IP cameras with audio done right."""

__version__ = "0.1.0"
