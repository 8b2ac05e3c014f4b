"""The hostile-camera suite uses the shared `simulator` fixture for its healthy camera."""

from tests.conftest import simulator  # noqa: F401  (re-exported fixture)
