"""What each node knows of its own cameras only, gathered into one answer (a scrape of `/metrics`).

A Prometheus scrape reaches one node (one worker, behind a shared port); its cameras are spread over
all of them. The node asked adds the other nodes' exposition (`CameraRouter.gather`) to its own:
the metric families are merged by name, each sample kept once (a camera has one owner, so its
samples come from one node).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def merge_metrics(texts: Iterable[str]) -> bytes:
    """One Prometheus text exposition of several (the first's samples win on a duplicate)."""
    merged: dict[str, Metric] = {}
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for text in texts:
        for family in text_string_to_metric_families(text):
            into = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type))
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in seen:
                    seen.add(key)
                    into.samples.append(sample)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(merged.values())))  # type: ignore[arg-type]
    return generate_latest(registry)
