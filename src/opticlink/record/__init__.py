"""Recording: timed frames to files."""
