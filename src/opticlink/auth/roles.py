"""Roles and what each may do; `Principal` is who a request or a WebSocket acts for."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

ALL_CAMERAS = "*"


class Role(StrEnum):
    ADMIN = "admin"  # everything: users, audit log, every camera's talk
    OPERATOR = "operator"  # watch, listen, export; talk to the cameras they are allowed
    VIEWER = "viewer"  # watch and listen


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    name: str
    role: Role
    talk: frozenset[str]  # cameras this user may talk to ("*": every camera), for operators
    via: str  # "session", "token" or "link"

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def may_export(self) -> bool:
        """Admins and operators take recordings away; viewers watch and listen only."""
        return self.role in (Role.ADMIN, Role.OPERATOR)

    def talk_refusal(self, camera: str) -> str | None:
        """Why this user may not talk to `camera`, or None if they may."""
        if self.role is Role.ADMIN:
            return None
        if self.role is Role.VIEWER:
            return "viewers may not talk: ask an admin for the operator role"
        if camera in self.talk or ALL_CAMERAS in self.talk:
            return None
        return f"you may not talk to {camera}: ask an admin for its talk permission"
