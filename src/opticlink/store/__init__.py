"""The service's database: schema, migrations and one data-access layer (SQLAlchemy Core; SQLite embedded,
or PostgreSQL shared by several nodes), camera leases between those nodes."""

from opticlink.store.database import AuditRow, Database, DatabaseError, SessionRow, TokenRow, UserRow, mask_url

__all__ = ["AuditRow", "Database", "DatabaseError", "SessionRow", "TokenRow", "UserRow", "mask_url"]
