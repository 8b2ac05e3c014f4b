"""RTSP authentication: Basic (RFC 7617) and Digest with MD5 or SHA-256 (RFC 7616), both ends.

The client picks the strongest challenge a camera offers: Digest SHA-256, then Digest MD5, then
Basic. `DigestVerifier` is the server side the simulator uses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

_TOKEN = re.compile(r'\s*([A-Za-z0-9_.+-]+)\s*(?:=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*)))?\s*,?')
_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda b: hashlib.md5(b, usedforsecurity=False).hexdigest(),
    "SHA-256": lambda b: hashlib.sha256(b).hexdigest(),
}


@dataclass(slots=True)
class Challenge:
    """One WWW-Authenticate challenge: scheme in lower case and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def algorithm(self) -> str:
        return self.params.get("algorithm", "MD5").upper()

    def describe(self) -> str:
        realm = self.params.get("realm", "")
        extra = f" {self.algorithm}" if self.scheme == "digest" else ""
        return f"{self.scheme.capitalize()}{extra} realm={realm!r}"


def parse_challenges(values: list[str]) -> list[Challenge]:
    """Challenges from every WWW-Authenticate header value (several may share one header)."""
    out: list[Challenge] = []
    for value in values:
        current: Challenge | None = None
        rest = value.strip()
        while rest:
            scheme_match = re.match(r"(Basic|Digest|Bearer|Negotiate)\b\s*", rest, re.IGNORECASE)
            if scheme_match:
                current = Challenge(scheme_match.group(1).lower())
                out.append(current)
                rest = rest[scheme_match.end() :]
                continue
            match = _TOKEN.match(rest)
            if not match or match.end() == 0:
                break
            key = match.group(1).lower()
            raw = match.group(2)
            val = re.sub(r"\\(.)", r"\1", raw) if raw is not None else (match.group(3) or "")
            if current is not None:
                current.params[key] = val
            rest = rest[match.end() :]
    return out


def _rank(challenge: Challenge) -> int:
    if challenge.scheme == "digest":
        return {"SHA-256": 4, "SHA-256-SESS": 3, "MD5": 2, "MD5-SESS": 1}.get(challenge.algorithm, -1)
    if challenge.scheme == "basic":
        return 0
    return -1


def best_challenge(challenges: list[Challenge]) -> Challenge | None:
    """The strongest challenge we can answer, or None."""
    usable = [c for c in challenges if _rank(c) >= 0]
    return max(usable, key=_rank) if usable else None


class Authenticator:
    """Answers one challenge for every request of a session (Digest counts its nonce uses)."""

    def __init__(self, username: str, password: str, challenge: Challenge,
                 cnonce: Callable[[], str] | None = None) -> None:
        self.username = username
        self.password = password
        self.challenge = challenge
        self._nc = 0
        self._cnonce = cnonce or (lambda: os.urandom(8).hex())

    def authorization(self, method: str, uri: str) -> str:
        """The Authorization header value for this request."""
        if self.challenge.scheme == "basic":
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return f"Basic {token}"
        params = self.challenge.params
        algorithm = self.challenge.algorithm
        hash_name = algorithm.removesuffix("-SESS")
        h = _HASHES[hash_name]
        realm = params.get("realm", "")
        nonce = params.get("nonce", "")
        qops = [q.strip().lower() for q in params.get("qop", "").split(",") if q.strip()]
        qop = "auth" if "auth" in qops else None
        self._nc += 1
        nc = f"{self._nc:08x}"
        cnonce = self._cnonce()
        ha1 = h(f"{self.username}:{realm}:{self.password}".encode())
        if algorithm.endswith("-SESS"):
            ha1 = h(f"{ha1}:{nonce}:{cnonce}".encode())
        ha2 = h(f"{method}:{uri}".encode())
        if qop:
            response = h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())
        else:
            response = h(f"{ha1}:{nonce}:{ha2}".encode())
        parts = [f'username="{self.username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
                 f'response="{response}"']
        if "algorithm" in params:
            parts.append(f"algorithm={params['algorithm']}")
        if qop:
            parts += [f"qop={qop}", f"nc={nc}", f'cnonce="{cnonce}"']
        if "opaque" in params:
            parts.append(f'opaque="{params["opaque"]}"')
        return "Digest " + ", ".join(parts)


class DigestVerifier:
    """Server-side Digest authentication with MD5 and SHA-256 challenges (for the simulator)."""

    def __init__(self, username: str, password: str, realm: str = "OpticLink") -> None:
        self.username = username
        self.password = password
        self.realm = realm
        self.nonce = os.urandom(16).hex()

    def challenges(self) -> list[str]:
        """WWW-Authenticate values, strongest first."""
        return [f'Digest realm="{self.realm}", nonce="{self.nonce}", algorithm={alg}, qop="auth"'
                for alg in ("SHA-256", "MD5")]

    def verify(self, method: str, authorization: str | None) -> bool:
        if not authorization or not authorization.lower().startswith("digest "):
            return False
        parsed = parse_challenges([authorization])
        if not parsed:
            return False
        p = parsed[0].params
        algorithm = p.get("algorithm", "MD5").upper()
        if p.get("username") != self.username or p.get("nonce") != self.nonce or algorithm not in _HASHES:
            return False
        h = _HASHES[algorithm]
        ha1 = h(f"{self.username}:{self.realm}:{self.password}".encode())
        ha2 = h(f"{method}:{p.get('uri', '')}".encode())
        if p.get("qop"):
            expected = h(f"{ha1}:{self.nonce}:{p.get('nc', '')}:{p.get('cnonce', '')}:{p['qop']}:{ha2}".encode())
        else:
            expected = h(f"{ha1}:{self.nonce}:{ha2}".encode())
        return hmac.compare_digest(expected, p.get("response", ""))
