"""The sync engine: every track of a camera on one timeline, whatever the clocks and network do."""

from opticlink.sync.engine import SyncEngine, SyncStats, TrackSyncStats
from opticlink.sync.merge import FrameMerger

__all__ = ["FrameMerger", "SyncEngine", "SyncStats", "TrackSyncStats"]
