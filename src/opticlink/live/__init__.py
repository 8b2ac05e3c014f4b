"""Live view: the binary WebSocket protocol and the viewer endpoint."""
