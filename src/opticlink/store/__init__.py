"""The service's database: schema, migrations and one data-access layer (SQLAlchemy Core; SQLite embedded)."""

from opticlink.store.database import AuditRow, Database, SessionRow, TokenRow, UserRow

__all__ = ["AuditRow", "Database", "SessionRow", "TokenRow", "UserRow"]
