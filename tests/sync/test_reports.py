import pytest

from opticlink.sync.reports import BogusReport, ReportMapping


def test_one_report_maps_at_the_nominal_rate_and_more_measure_the_real_one():
    mapping = ReportMapping(8000)
    mapping.add(1000, 100.0)
    assert mapping.wall_at(9000) == pytest.approx(101.0)
    assert mapping.skew_ppm is None
    for i in range(1, 30):
        mapping.add(1000 + int(i * 8000 * 1.0003), 100.0 + i)
    assert mapping.skew_ppm == pytest.approx(300, abs=3)
    assert mapping.wall_at(1000 + int(40 * 8000 * 1.0003)) == pytest.approx(140.0, abs=2e-4)


@pytest.mark.parametrize(("ts", "wall", "reason"), [
    (9000, 100.0, "frozen"),
    (9000, 99.5, "went back"),
    (9000 + 800, 101.0, "ppm from nominal"),
    (8000 * 4 + 1000, 104.5, "ppm from nominal"),
])
def test_bogus_reports_are_refused_with_the_reason(ts, wall, reason):
    mapping = ReportMapping(8000)
    mapping.add(1000, 100.0)
    with pytest.raises(BogusReport, match=reason):
        mapping.add(ts, wall)


def test_a_report_off_the_series_is_refused():
    mapping = ReportMapping(90000)
    for i in range(5):
        mapping.add(i * 90000, 50.0 + i)
    with pytest.raises(BogusReport, match="off the series"):
        mapping.add(15 * 90000, 65.006)  # 545 ppm over 11 s looks plausible; 6 ms off the line does not
