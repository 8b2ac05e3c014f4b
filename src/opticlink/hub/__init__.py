"""The camera's frame bus: the camera session publishes each frame once; consumers subscribe."""

from opticlink.hub.bus import FrameBus, Gap, InlineSubscription, Queued, Subscription

__all__ = ["FrameBus", "Gap", "InlineSubscription", "Queued", "Subscription"]
