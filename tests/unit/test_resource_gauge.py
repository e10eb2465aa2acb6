"""`ResourceGauge`: per-resource series as plain floats, exposed exactly like a labelled Gauge."""

from __future__ import annotations

import sys

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from vaultbridge.observability.metrics import ResourceGauge


def _pair() -> tuple[CollectorRegistry, ResourceGauge, CollectorRegistry, Gauge]:
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = ResourceGauge("vaultbridge_test_ready", "help text", ours_registry)
    theirs = Gauge(
        "vaultbridge_test_ready",
        "help text",
        ["kind", "namespace", "name"],
        registry=theirs_registry,
    )
    return ours_registry, ours, theirs_registry, theirs


def test_exposition_equals_a_labelled_gauge() -> None:
    ours_registry, ours, theirs_registry, theirs = _pair()
    assert generate_latest(ours_registry) == generate_latest(theirs_registry)
    for gauge in (ours, theirs):
        gauge.labels("VaultStaticSecret", "a", "one").set(1)
        gauge.labels("VaultStaticSecret", "b", 'we"ird\\name').set(0)
        gauge.labels("VaultPKISecret", "a", "cert").set(1796053167.25)
        gauge.labels("VaultStaticSecret", "a", "one").set(0)  # overwrite keeps one series
    assert generate_latest(ours_registry) == generate_latest(theirs_registry)
    for gauge in (ours, theirs):
        gauge.remove("VaultStaticSecret", "a", "one")
    assert generate_latest(ours_registry) == generate_latest(theirs_registry)
    assert ours_registry.get_sample_value(
        "vaultbridge_test_ready", {"kind": "VaultPKISecret", "namespace": "a", "name": "cert"}
    ) == pytest.approx(1796053167.25)


def test_remove_of_an_absent_series_is_a_no_op_like_a_gauge() -> None:
    ours_registry, ours, theirs_registry, theirs = _pair()
    for gauge in (ours, theirs):
        gauge.labels("VaultStaticSecret", "a", "kept").set(1)
        gauge.remove("VaultStaticSecret", "a", "missing")
    assert generate_latest(ours_registry) == generate_latest(theirs_registry)


def test_a_series_costs_far_less_than_a_gauge_child() -> None:
    """The reason for the class: count bytes held per series (no timing involved)."""
    _, ours, _, _ = _pair()
    for i in range(1000):
        ours.labels("VaultStaticSecret", "ns", f"n{i}").set(1)
    per_series = (
        sys.getsizeof(ours._values)
        + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in ours._values.items())
    ) / 1000
    assert per_series < 300
