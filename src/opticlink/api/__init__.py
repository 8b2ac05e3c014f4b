"""The HTTP and WebSocket service: configuration, camera runtimes, routes."""
