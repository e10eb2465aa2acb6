"""Label selector strings (flag values) evaluated against label sets."""

from __future__ import annotations

import pytest

from vaultbridge.kube.selectors import parse_selector


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("", {}, True),
        ("tier=critical", {"tier": "critical"}, True),
        ("tier==critical", {"tier": "critical"}, True),
        ("tier=critical", {"tier": "batch"}, False),
        ("tier=critical", {}, False),
        ("tier!=batch", {}, True),
        ("tier!=batch", {"tier": "batch"}, False),
        ("vaultbridge.dev/critical", {"vaultbridge.dev/critical": ""}, True),
        ("vaultbridge.dev/critical", {}, False),
        ("!sandbox", {"sandbox": "1"}, False),
        ("!sandbox", {}, True),
        ("env in (prod, staging)", {"env": "prod"}, True),
        ("env in (prod,staging)", {"env": "dev"}, False),
        ("env notin (dev)", {"env": "prod"}, True),
        ("env notin (dev)", {}, True),
        ("env in (prod),tier=critical", {"env": "prod", "tier": "critical"}, True),
        ("env in (prod),tier=critical", {"env": "prod"}, False),
    ],
)
def test_selector_matches(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_selector(selector)(labels) is expected


@pytest.mark.parametrize("selector", ["=x", "a b", "a in prod", "a=(b)", "a in (b c)", ","])
def test_malformed_selector_is_a_clear_error(selector: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        parse_selector(selector)
