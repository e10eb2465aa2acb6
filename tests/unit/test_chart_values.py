"""Chart values and their schema agree, and the defaults are the hardened ones.

(Rendering with the real `helm` and schema rejection are in
tests/integration/test_deploy_chart.py; this is the fast, pure part.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[2] / "deploy" / "chart"
VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())


def _keys(values: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Value keys the schema does not describe (where it describes properties)."""
    missing = []
    props = schema.get("properties")
    if props is None:
        return []
    for key, value in values.items():
        if key not in props:
            missing.append(prefix + key)
        elif isinstance(value, dict):
            missing += _keys(value, props[key], f"{prefix}{key}.")
    return missing


def test_every_value_is_in_the_schema() -> None:
    assert _keys(VALUES, SCHEMA) == []
    assert SCHEMA["additionalProperties"] is False


def test_every_schema_property_has_a_default() -> None:
    assert set(SCHEMA["properties"]) - {"global"} == set(VALUES)


def test_defaults_are_hardened() -> None:
    pod, container = VALUES["podSecurityContext"], VALUES["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["privileged"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    # The schema pins the same, so a values file cannot weaken them.
    sc = SCHEMA["properties"]["securityContext"]["properties"]
    assert sc["readOnlyRootFilesystem"] == {"const": True}
    assert sc["allowPrivilegeEscalation"] == {"const": False}


def test_ha_defaults() -> None:
    assert VALUES["replicas"] >= 2
    election = VALUES["leaderElection"]
    assert election["enabled"] is True
    assert election["retryPeriod"] < election["renewDeadline"] < election["leaseDuration"]


def test_client_cache_values_map_to_operator_features() -> None:
    """Persistence is the operator's --persist-tokens; Transit goes on the default VaultAuth."""
    template = (CHART / "templates" / "deployment.yaml").read_text()
    assert "--persist-tokens={{ .Values.clientCache.persistTokens }}" in template
    defaults = (CHART / "templates" / "defaults.yaml").read_text()
    assert "storageEncryption:" in defaults
    assert VALUES["clientCache"]["persistTokens"] is True
    assert VALUES["clientCache"]["storageEncryption"]["enabled"] is False
