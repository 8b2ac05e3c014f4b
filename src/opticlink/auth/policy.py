"""Which requests may reach the service at all: the Host and Origin they carry, and how often an
address may fail to log in.

Host: a page on `http://evil.example` whose name is re-pointed at this service (DNS rebinding)
reaches it with `Host: evil.example`. Only the configured names, `localhost`, the listen address
and IP literals are accepted: an IP literal can only come from a page served at that very address,
so it cannot carry an attacker's page. Origin: a browser sends it on every WebSocket; a page of
another origin may open a WebSocket to us with our cookie attached, so only our own origin (the
Host the request came to) and configured origins are accepted. A client that sends no Origin is
not a browser page, and its credentials are its own.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def host_name(host: str) -> str:
    """`name` from a Host header `name[:port]` or `[v6]:port`, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class RequestPolicy:
    def __init__(self, hosts: Iterable[str] = (), listen_host: str = "127.0.0.1",
                 origins: Iterable[str] = ()) -> None:
        self.hosts = {h.lower() for h in (*hosts, *LOOPBACK_NAMES, listen_host)}
        self.origins = {o.rstrip("/").lower() for o in origins}

    def host_allowed(self, host: str | None) -> bool:
        if not host:
            return False
        name = host_name(host)
        return name in self.hosts or _is_ip(name)

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        """Same origin as the Host the request came to, or configured; no Origin: not a browser page."""
        if origin is None:
            return True
        origin = origin.rstrip("/").lower()
        if origin in self.origins:
            return True
        parts = urlsplit(origin)
        return (parts.scheme in ("http", "https") and host is not None and parts.netloc == host.lower()
                and self.host_allowed(parts.netloc))


class LoginLimiter:
    """At most `failures` failed logins per address in `window` seconds; then refused until the oldest
    failure leaves the window. Addresses are forgotten oldest first beyond `max_addresses`, so a flood
    of source addresses cannot grow memory without bound."""

    def __init__(self, failures: int = 5, window: float = 60.0, max_addresses: int = 10_000) -> None:
        self.failures = failures
        self.window = window
        self.max_addresses = max_addresses
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str, now: float | None = None) -> float:
        """Seconds until `address` may try again; 0 if it may now."""
        now = time.monotonic() if now is None else now
        times = self._seen.get(address)
        if times is None:
            return 0.0
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._seen[address]
            return 0.0
        return self.window - (now - times[0]) if len(times) >= self.failures else 0.0

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        times = self._seen.pop(address, None) or deque(maxlen=self.failures)
        times.append(now)
        self._seen[address] = times
        while len(self._seen) > self.max_addresses:
            self._seen.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._seen.pop(address, None)
