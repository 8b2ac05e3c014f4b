"""The retention tests of `tests/record/test_retention.py` (the index, its garbage list and files) on both
backends: the same test functions, with their `recordings` fixture on the `database` of conftest."""

from __future__ import annotations

import pytest

from opticlink.store.recordings import Recordings
from tests.record.test_retention import (  # noqa: F401 - collected here again, on both backends
    test_a_segment_straddling_the_horizon_stays,
    test_by_age_keeps_the_writing_segment,
    test_by_camera_size_oldest_first,
    test_by_free_space_floor,
    test_by_total_size_globally_oldest_first,
    test_leftover_garbage_is_finished,
    test_nothing_but_the_writing_segment_left,
    test_old_gaps_go_with_the_recordings,
)


@pytest.fixture
def recordings(database) -> Recordings:
    return Recordings(database)
