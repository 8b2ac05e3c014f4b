"""Password hashing: argon2id with argon2-cffi's defaults (RFC 9106's low-memory profile, 64 MiB)."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()


@functools.cache
def _unknown() -> str:
    """Verified against when the user does not exist, so a wrong name takes as long as a wrong password.
    Made at first use, not at import: every process that imports the service (each worker, each CLI
    verb) would otherwise pay a 64 MiB argon2 hash, about 0.4 CPU-s, to start."""
    return _hasher.hash("no such user: this hash only takes time")

MIN_PASSWORD = 8  # characters; argon2 makes guessing slow, not short passwords safe
MAX_PASSWORD = 1024  # characters: hashing a megabyte "password" per request would be a CPU lever


def hash_password(password: str) -> str:
    check_password(password)
    return _hasher.hash(password)


def check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValueError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if `password` matches; a missing hash (a user without a password) never matches, after
    the same work as a real check."""
    if len(password) > MAX_PASSWORD:
        return False
    try:
        return _hasher.verify(password_hash or _unknown(), password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
