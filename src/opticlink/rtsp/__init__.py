"""RTSP: messages, SDP, authentication, and the client session (sans-IO core, asyncio adapter)."""
