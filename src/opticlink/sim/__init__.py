"""Camera simulator: a real RTSP server whose cameras misbehave on command and know the truth."""
