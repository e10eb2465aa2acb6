"""Install the generated CRDs (deploy/crds) into the dev environment's API server."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from .errors import DevEnvError
from .kubeapi import KubeAdmin
from .paths import controlplane_module_dir

_CRD_API = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def crd_dir() -> Path:
    return controlplane_module_dir().parent.parent / "deploy" / "crds"


def install_crds(admin: KubeAdmin, directory: Path | None = None, timeout: float = 60) -> list[str]:
    """Create or replace every CRD in `directory` and wait until each is Established."""
    directory = directory or crd_dir()
    names = []
    for path in sorted(directory.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        name = crd["metadata"]["name"]
        status, existing = admin.request("GET", f"{_CRD_API}/{name}")
        if status == 200:
            crd["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            status, resp = admin.request("PUT", f"{_CRD_API}/{name}", crd)
        else:
            status, resp = admin.request("POST", _CRD_API, crd)
        if status not in (200, 201):
            raise DevEnvError("kube-apiserver", f"installing CRD {name} failed: {resp}")
        names.append(name)
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            _, crd = admin.request("GET", f"{_CRD_API}/{name}")
            conditions = crd.get("status", {}).get("conditions", [])
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                break
            if time.monotonic() > deadline:
                raise DevEnvError("kube-apiserver", f"CRD {name} not Established")
            time.sleep(0.1)
    return names
