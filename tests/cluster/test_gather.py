"""A scrape of one node gives every node's cameras (`cluster.gather`)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

A = """# HELP opticlink_camera_connected 1 while the camera session plays
# TYPE opticlink_camera_connected gauge
opticlink_camera_connected{camera="cam1"} 1.0
# HELP opticlink_recording_bytes_total bytes written to recordings
# TYPE opticlink_recording_bytes_total counter
opticlink_recording_bytes_total{camera="cam1"} 1000.0
"""
B = A.replace("cam1", "cam2").replace("1000.0", "2000.0")


def test_every_node_s_samples_come_out_once_each_in_one_family_per_metric():
    from opticlink.cluster.gather import merge_metrics

    merged = merge_metrics([A, B, A]).decode()
    families = {f.name: f for f in text_string_to_metric_families(merged)}
    assert families["opticlink_camera_connected"].type == "gauge"
    assert {s.labels["camera"]: s.value for s in families["opticlink_camera_connected"].samples} == {"cam1": 1.0,
                                                                                                 "cam2": 1.0}
    assert families["opticlink_recording_bytes"].type == "counter"
    assert sorted(s.value for s in families["opticlink_recording_bytes"].samples
                  if s.name == "opticlink_recording_bytes_total") == [1000.0, 2000.0]
    assert merged.count("# TYPE opticlink_camera_connected gauge") == 1
