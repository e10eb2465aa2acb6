"""The pod side of inject mode, pure: what a pod asks for (its annotations) and the JSONPatch
the mutating webhook answers with.

Resolution (which objects, which Vault, whether the namespace may use them) is the
operator's (`controllers/inject.py`); this module only reads a pod and writes a patch, so it
is tested without servers and the agent could import it without pulling in the operator.

What a mutated pod gets (every name below is a constant of this module):

- an in-memory `emptyDir` (`medium: Memory`, `sizeLimit` small) mounted at the inject path in
  every application container (and the pod's own init containers, which run after ours);
- a projected ServiceAccount token volume (the VaultAuth's audience, never the API server's)
  mounted **only** in the two agent containers, at the directory of `DEFAULT_TOKEN_PATH`;
- an init container `vaultbridge agent --once`, first, so the files exist before any other
  container starts, and a native sidecar (an init container with `restartPolicy: Always`, so
  Jobs still complete) `vaultbridge agent` that keeps them fresh; both carry the AgentConfig
  in `VAULTBRIDGE_AGENT_CONFIG`;
- the label `vaultbridge.dev/injected: "true"` (what the operator's pod informer selects) and
  the annotation `vaultbridge.dev/injected-objects` (`Kind/name,...`: what it counts).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import (
    AGENT_CONFIG_ENV,
    DEFAULT_MOUNT_PATH,
    DEFAULT_TOKEN_PATH,
    AgentConfig,
    AgentOnChange,
)

INJECT_ANNOTATION = "vaultbridge.dev/inject"
"""Pod annotation: comma-separated names of inject-mode objects of the pod's namespace."""
OPT_IN_LABEL = "vaultbridge.dev/inject"
"""Pod label (value "true") the MutatingWebhookConfiguration's objectSelector matches: only
pods carrying it are ever sent to the webhook, so an operator outage blocks only them."""
PATH_ANNOTATION = "vaultbridge.dev/inject-path"
TEMPLATE_ANNOTATION_PREFIX = "vaultbridge.dev/inject-template."
FILE_ANNOTATION_PREFIX = "vaultbridge.dev/inject-file."
ROLE_ANNOTATION = "vaultbridge.dev/inject-role"
SIGNAL_ANNOTATION = "vaultbridge.dev/inject-signal"
SIGNAL_PROCESS_ANNOTATION = "vaultbridge.dev/inject-signal-process"
TOUCH_ANNOTATION = "vaultbridge.dev/inject-touch"

INJECTED_LABEL = "vaultbridge.dev/injected"
"""Set to "true" by the webhook; the operator's pod informer lists only such pods."""
INJECTED_OBJECTS_ANNOTATION = "vaultbridge.dev/injected-objects"
"""Set by the webhook: `Kind/name,...` of the objects resolved for the pod."""

INIT_CONTAINER = "vaultbridge-agent-init"
SIDECAR_CONTAINER = "vaultbridge-agent"
SECRETS_VOLUME = "vaultbridge-secrets"
TOKEN_VOLUME = "vaultbridge-token"  # noqa: S105 (a volume name)
TOKEN_DIR = posixpath.dirname(DEFAULT_TOKEN_PATH)

MAX_OBJECTS = 32
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_FILENAME = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_SIGNAL = re.compile(r"^SIG[A-Z0-9]{2,10}$")


class InjectRefused(Exception):
    """The pod must not be admitted: `reason` (a CamelCase word) and a message for the user."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class InjectRequest:
    """A pod's annotations, read and checked."""

    names: tuple[str, ...]
    mount_path: str = DEFAULT_MOUNT_PATH
    templates: Mapping[str, str] = field(default_factory=dict)
    filenames: Mapping[str, str] = field(default_factory=dict)
    role: str | None = None
    on_change: AgentOnChange = field(default_factory=AgentOnChange)


@dataclass(frozen=True)
class AgentOptions:
    """Operator flags that shape the agent containers."""

    image: str
    cpu_request: str = "10m"
    memory_request: str = "32Mi"
    memory_limit: str = "64Mi"
    volume_size_limit: str = "16Mi"
    token_expiration_seconds: int = 3600
    image_pull_policy: str = "IfNotPresent"


def _meta(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = pod.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _spec(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = pod.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def pod_annotations(pod: Mapping[str, Any]) -> Mapping[str, str]:
    value = _meta(pod).get("annotations")
    return value if isinstance(value, Mapping) else {}


def wants_injection(pod: Mapping[str, Any]) -> bool:
    return bool(str(pod_annotations(pod).get(INJECT_ANNOTATION) or "").strip())


def already_injected(pod: Mapping[str, Any]) -> bool:
    """A pod that already has our containers (a re-invocation, or a pod copied from a mutated
    one) is left alone: the webhook never mutates twice."""
    spec = _spec(pod)
    names = {
        str(c.get("name"))
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        if isinstance(c, Mapping)
    }
    return INIT_CONTAINER in names or SIDECAR_CONTAINER in names


def _check_path(value: str, what: str) -> str:
    path = value.strip()
    if not path.startswith("/") or posixpath.normpath(path) != path.rstrip("/") or ".." in path:
        raise InjectRefused(
            "InvalidInjectAnnotation", f"{what} {value!r} must be an absolute, normalized path"
        )
    return path.rstrip("/") or "/"


def parse_request(pod: Mapping[str, Any]) -> InjectRequest:
    """The pod's inject annotations, checked (raises `InjectRefused` with the reason)."""
    notes = pod_annotations(pod)
    raw = str(notes.get(INJECT_ANNOTATION) or "")
    names: list[str] = []
    for item in (n.strip() for n in raw.split(",")):
        if not item:
            continue
        if "/" in item:
            raise InjectRefused(
                "CrossNamespaceInject",
                f"{INJECT_ANNOTATION}: {item!r} names an object of another namespace; a pod may "
                "only use objects of its own namespace (write the name only)",
            )
        if not _NAME.match(item) or len(item) > 253:
            raise InjectRefused(
                "InvalidInjectAnnotation", f"{INJECT_ANNOTATION}: {item!r} is not an object name"
            )
        if item not in names:
            names.append(item)
    if not names:
        raise InjectRefused("InvalidInjectAnnotation", f"{INJECT_ANNOTATION} names no object")
    if len(names) > MAX_OBJECTS:
        raise InjectRefused(
            "InvalidInjectAnnotation", f"{INJECT_ANNOTATION}: at most {MAX_OBJECTS} objects"
        )
    mount = _check_path(str(notes.get(PATH_ANNOTATION) or DEFAULT_MOUNT_PATH), PATH_ANNOTATION)
    if mount in ("/", TOKEN_DIR) or mount.startswith(TOKEN_DIR + "/"):
        raise InjectRefused(
            "InvalidInjectAnnotation", f"{PATH_ANNOTATION} {mount!r} is not a usable mount path"
        )
    templates: dict[str, str] = {}
    filenames: dict[str, str] = {}
    for key, value in notes.items():
        for prefix, target in (
            (TEMPLATE_ANNOTATION_PREFIX, templates),
            (FILE_ANNOTATION_PREFIX, filenames),
        ):
            if key.startswith(prefix):
                obj = key[len(prefix) :]
                if obj not in names:
                    raise InjectRefused(
                        "InvalidInjectAnnotation",
                        f"{key}: {obj!r} is not named in {INJECT_ANNOTATION}",
                    )
                target[obj] = str(value)
    for obj, filename in filenames.items():
        if not _FILENAME.match(filename) or filename in (".", ".."):
            raise InjectRefused(
                "InvalidInjectAnnotation",
                f"{FILE_ANNOTATION_PREFIX}{obj}: {filename!r} must be a plain file name",
            )
        if obj not in templates:
            raise InjectRefused(
                "InvalidInjectAnnotation",
                f"{FILE_ANNOTATION_PREFIX}{obj} needs {TEMPLATE_ANNOTATION_PREFIX}{obj} "
                "(without a template every key is its own file)",
            )
    role = str(notes.get(ROLE_ANNOTATION) or "").strip() or None
    return InjectRequest(
        names=tuple(names),
        mount_path=mount,
        templates=templates,
        filenames=filenames,
        role=role,
        on_change=_on_change(pod, notes),
    )


def _on_change(pod: Mapping[str, Any], notes: Mapping[str, str]) -> AgentOnChange:
    signal = str(notes.get(SIGNAL_ANNOTATION) or "").strip() or None
    process = str(notes.get(SIGNAL_PROCESS_ANNOTATION) or "").strip() or None
    touch = str(notes.get(TOUCH_ANNOTATION) or "").strip() or None
    if (signal is None) != (process is None):
        raise InjectRefused(
            "InvalidInjectAnnotation",
            f"{SIGNAL_ANNOTATION} and {SIGNAL_PROCESS_ANNOTATION} go together",
        )
    if signal is not None:
        if not _SIGNAL.match(signal):
            raise InjectRefused(
                "InvalidInjectAnnotation", f"{SIGNAL_ANNOTATION} {signal!r} is not like SIGHUP"
            )
        if _spec(pod).get("shareProcessNamespace") is not True:
            raise InjectRefused(
                "SignalNeedsSharedProcessNamespace",
                f"{SIGNAL_ANNOTATION} needs shareProcessNamespace: true on the pod (the agent "
                "cannot see the application's processes otherwise)",
            )
    if touch is not None:
        touch = _check_path(touch, TOUCH_ANNOTATION)
    return AgentOnChange(signal=signal, signal_process=process, touch=touch)


def run_as_user(pod: Mapping[str, Any]) -> int | None:
    """The user the application runs as: the pod's runAsUser, else its first container's."""
    spec = _spec(pod)
    candidates = [spec.get("securityContext")] + [
        c.get("securityContext") for c in spec.get("containers") or [] if isinstance(c, Mapping)
    ]
    for ctx in candidates:
        if isinstance(ctx, Mapping) and isinstance(ctx.get("runAsUser"), int):
            return int(ctx["runAsUser"])
    return None


def token_file(index: int) -> str:
    """The token file of the `index`-th distinct audience (`token`, `token-1`, ...)."""
    return posixpath.basename(DEFAULT_TOKEN_PATH) + ("" if index == 0 else f"-{index}")


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def agent_container(
    name: str,
    options: AgentOptions,
    config_json: str,
    mount_path: str,
    *,
    sidecar: bool,
    uid: int | None = None,
) -> dict[str, Any]:
    """One agent container; `uid`: the application's user, which the agent runs as so the
    files it writes (mode 0400) are the application's (root needs no such help)."""
    security: dict[str, Any] = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if uid:
        security["runAsUser"] = uid
    container: dict[str, Any] = {
        "name": name,
        "image": options.image,
        "imagePullPolicy": options.image_pull_policy,
        "command": ["vaultbridge"],
        "args": ["agent"] if sidecar else ["agent", "--once"],
        "env": [{"name": AGENT_CONFIG_ENV, "value": config_json}],
        "resources": {
            "requests": {"cpu": options.cpu_request, "memory": options.memory_request},
            "limits": {"memory": options.memory_limit},
        },
        "securityContext": security,
        "volumeMounts": [
            {"name": SECRETS_VOLUME, "mountPath": mount_path},
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
        ],
    }
    if sidecar:
        container["restartPolicy"] = "Always"
    return container


def build_patch(
    pod: Mapping[str, Any],
    config: AgentConfig,
    request: InjectRequest,
    *,
    audiences: Sequence[str],
    resolved: Sequence[tuple[str, str]],
    options: AgentOptions,
) -> list[dict[str, Any]]:
    """The JSONPatch that injects the agent (see the module docstring).

    `audiences`: the distinct token audiences, in the order of `token_file`; `resolved`: the
    (kind, name) of each object, for the counting annotation.
    """
    spec = _spec(pod)
    meta = _meta(pod)
    mount = request.mount_path
    ops: list[dict[str, Any]] = []

    for kind in ("containers", "initContainers"):
        for container in spec.get(kind) or []:
            for m in container.get("volumeMounts") or []:
                if m.get("mountPath") == mount or m.get("name") in (SECRETS_VOLUME, TOKEN_VOLUME):
                    raise InjectRefused(
                        "InjectMountConflict",
                        f"container {container.get('name')!r} already mounts "
                        f"{m.get('mountPath')!r} ({m.get('name')!r}); choose another "
                        f"{PATH_ANNOTATION}",
                    )
    for v in spec.get("volumes") or []:
        if v.get("name") in (SECRETS_VOLUME, TOKEN_VOLUME):
            raise InjectRefused(
                "InjectMountConflict", f"the pod already has a volume named {v.get('name')!r}"
            )

    # Labels and annotations: what the operator's pod informer selects and counts.
    if not isinstance(meta.get("labels"), Mapping):
        ops.append({"op": "add", "path": "/metadata/labels", "value": {}})
    ops.append(
        {"op": "add", "path": f"/metadata/labels/{_escape(INJECTED_LABEL)}", "value": "true"}
    )
    if not isinstance(meta.get("annotations"), Mapping):
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    ops.append(
        {
            "op": "add",
            "path": f"/metadata/annotations/{_escape(INJECTED_OBJECTS_ANNOTATION)}",
            "value": ",".join(f"{kind}/{name}" for kind, name in resolved),
        }
    )

    volumes = [
        {
            "name": SECRETS_VOLUME,
            "emptyDir": {"medium": "Memory", "sizeLimit": options.volume_size_limit},
        },
        {
            "name": TOKEN_VOLUME,
            "projected": {
                "defaultMode": 0o440,
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": audience,
                            "expirationSeconds": options.token_expiration_seconds,
                            "path": token_file(i),
                        }
                    }
                    for i, audience in enumerate(audiences)
                ],
            },
        },
    ]
    if spec.get("volumes"):
        ops.extend({"op": "add", "path": "/spec/volumes/-", "value": v} for v in volumes)
    else:
        ops.append({"op": "add", "path": "/spec/volumes", "value": volumes})

    app_mount = {"name": SECRETS_VOLUME, "mountPath": mount, "readOnly": True}
    for kind in ("containers", "initContainers"):
        for i, container in enumerate(spec.get(kind) or []):
            if container.get("volumeMounts"):
                ops.append(
                    {"op": "add", "path": f"/spec/{kind}/{i}/volumeMounts/-", "value": app_mount}
                )
            else:
                ops.append(
                    {"op": "add", "path": f"/spec/{kind}/{i}/volumeMounts", "value": [app_mount]}
                )

    config_json = config.to_env()
    uid = run_as_user(pod)
    init = agent_container(INIT_CONTAINER, options, config_json, mount, sidecar=False, uid=uid)
    sidecar = agent_container(SIDECAR_CONTAINER, options, config_json, mount, sidecar=True, uid=uid)
    if spec.get("initContainers"):
        # Ours first: the pod's own init containers may read the files too.
        ops.append({"op": "add", "path": "/spec/initContainers/0", "value": init})
        ops.append({"op": "add", "path": "/spec/initContainers/1", "value": sidecar})
    else:
        ops.append({"op": "add", "path": "/spec/initContainers", "value": [init, sidecar]})
    return ops
