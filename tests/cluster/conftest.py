"""The throwaway PostgreSQL server of the store's tests (`tests.store.conftest`), for nodes sharing a catalog."""

from tests.store.conftest import postgres_cluster  # noqa: F401  (a fixture)
