"""Fan-out of each camera's timed frames to its live viewers."""

from opticlink.hub.hub import CameraHub, Message, Viewer

__all__ = ["CameraHub", "Message", "Viewer"]
