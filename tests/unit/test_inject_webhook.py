"""Inject mode, operator side, without servers: the pod's annotations, the JSONPatch, the
admission decisions (from informer caches, with the reconcile's own checks) and the pod-file
delivery target of the flow."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError

from vaultbridge.api.auth import VaultAuthSpec
from vaultbridge.api.kinds import (
    SECRET_TRANSFORMATIONS,
    VAULT_AUTH_GLOBALS,
    VAULT_AUTHS,
    VAULT_CONNECTIONS,
    VAULT_DYNAMIC_SECRETS,
    VAULT_PATH_POLICIES,
    VAULT_PKI_SECRETS,
    VAULT_STATIC_SECRETS,
)
from vaultbridge.api.static_secret import VaultStaticSecretSpec
from vaultbridge.controllers.errors import ReconcileProblem
from vaultbridge.controllers.inject import count_pods, pod_keys, pod_login_of, pod_metadata_only
from vaultbridge.controllers.inject_admission import PodInjector
from vaultbridge.controllers.static_secret import VaultStaticSecretReconciler
from vaultbridge.controllers.vault_access import VaultAccess
from vaultbridge.engine.informer import Informer
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.inject.config import DEFAULT_TOKEN_PATH, AgentConfig
from vaultbridge.inject.pod import (
    INIT_CONTAINER,
    INJECTED_LABEL,
    INJECTED_OBJECTS_ANNOTATION,
    SECRETS_VOLUME,
    SIDECAR_CONTAINER,
    TOKEN_DIR,
    TOKEN_VOLUME,
    AgentOptions,
    InjectRefused,
    parse_request,
)
from vaultbridge.kube.resources import PODS, SECRETS
from vaultbridge.settings import Settings

from ..fakes import FakeVault, Harness, make_ctx, reconciled

NS = "app"
OPTIONS = AgentOptions(image="example.test/vaultbridge:1")


# -- a minimal JSONPatch ("add" only, as the webhook writes) --------------------------------


def apply_patch(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    for op in ops:
        assert op["op"] == "add", op
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        target: Any = out
        for part in parts[:-1]:
            target = target[int(part)] if isinstance(target, list) else target[part]
        last = parts[-1]
        if isinstance(target, list):
            if last == "-":
                target.append(op["value"])
            else:
                target.insert(int(last), op["value"])
        else:
            target[last] = op["value"]
    return out


def pod(annotations: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "web-", "namespace": NS, "annotations": annotations},
        "spec": {
            "containers": [{"name": "app", "image": "app:1"}],
            **spec,
        },
    }


def review(obj: dict[str, Any], operation: str = "CREATE") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u-1", "operation": operation, "namespace": NS, "object": obj},
    }


# -- the annotations ----------------------------------------------------------------------------


def test_parse_request_reads_every_annotation() -> None:
    req = parse_request(
        pod(
            {
                "vaultbridge.dev/inject": "db, tls,db",
                "vaultbridge.dev/inject-path": "/etc/secrets/",
                "vaultbridge.dev/inject-template.db": "{{ username }}",
                "vaultbridge.dev/inject-file.db": "db.env",
                "vaultbridge.dev/inject-role": "web",
                "vaultbridge.dev/inject-signal": "SIGHUP",
                "vaultbridge.dev/inject-signal-process": "nginx",
                "vaultbridge.dev/inject-touch": "/etc/secrets/.changed",
            },
            shareProcessNamespace=True,
        )
    )
    assert req.names == ("db", "tls")
    assert req.mount_path == "/etc/secrets"
    assert req.templates == {"db": "{{ username }}"} and req.filenames == {"db": "db.env"}
    assert req.role == "web"
    assert req.on_change.signal == "SIGHUP" and req.on_change.signal_process == "nginx"
    assert req.on_change.touch == "/etc/secrets/.changed"


@pytest.mark.parametrize(
    ("annotations", "spec", "reason", "words"),
    [
        ({"vaultbridge.dev/inject": "other/db"}, {}, "CrossNamespaceInject", "own namespace"),
        ({"vaultbridge.dev/inject": " , "}, {}, "InvalidInjectAnnotation", "names no object"),
        (
            {
                "vaultbridge.dev/inject": "db",
                "vaultbridge.dev/inject-signal": "SIGHUP",
                "vaultbridge.dev/inject-signal-process": "app",
            },
            {},
            "SignalNeedsSharedProcessNamespace",
            "shareProcessNamespace",
        ),
        (
            {"vaultbridge.dev/inject": "db", "vaultbridge.dev/inject-file.db": "x.env"},
            {},
            "InvalidInjectAnnotation",
            "needs vaultbridge.dev/inject-template.db",
        ),
        (
            {
                "vaultbridge.dev/inject": "db",
                "vaultbridge.dev/inject-template.db": "x",
                "vaultbridge.dev/inject-file.db": "../x",
            },
            {},
            "InvalidInjectAnnotation",
            "plain file name",
        ),
        (
            {"vaultbridge.dev/inject": "db", "vaultbridge.dev/inject-template.tls": "x"},
            {},
            "InvalidInjectAnnotation",
            "not named",
        ),
        (
            {"vaultbridge.dev/inject": "db", "vaultbridge.dev/inject-path": "/a/../b"},
            {},
            "InvalidInjectAnnotation",
            "normalized",
        ),
        (
            {"vaultbridge.dev/inject": "db", "vaultbridge.dev/inject-path": TOKEN_DIR},
            {},
            "InvalidInjectAnnotation",
            "not a usable mount path",
        ),
    ],
)
def test_parse_request_refusals(
    annotations: dict[str, str], spec: dict[str, Any], reason: str, words: str
) -> None:
    with pytest.raises(InjectRefused) as info:
        parse_request(pod(annotations, **spec))
    assert info.value.reason == reason
    assert words in info.value.message


# -- the admission decision ---------------------------------------------------------------------


def _settings(**kw: Any) -> Any:
    return lambda: Settings(**kw)


def _harness(**settings: Any) -> tuple[Harness, PodInjector]:
    h = make_ctx(FakeVault(), settings=_settings(**settings))
    for res in (VAULT_CONNECTIONS, VAULT_PATH_POLICIES, VAULT_AUTH_GLOBALS):
        h.ctx.informers[res] = Informer(h.kube, res)  # type: ignore[arg-type]
    h.cache(
        VAULT_CONNECTIONS,
        {
            "metadata": {"name": "default", "namespace": "vaultbridge-system", "uid": "c1"},
            "spec": {
                "address": "https://vault.example:8200",
                "headers": {"X-Team": "a"},
                "allowedNamespaces": ["*"],
            },
        },
    )
    h.cache(
        VAULT_AUTHS,
        {
            "metadata": {"name": "default", "namespace": "vaultbridge-system", "uid": "a1"},
            "spec": {
                "method": "kubernetes",
                "allowedNamespaces": ["*"],
                "kubernetes": {"role": "app-role", "serviceAccount": "default"},
            },
        },
    )
    for res in (VAULT_STATIC_SECRETS, VAULT_DYNAMIC_SECRETS, VAULT_PKI_SECRETS):
        h.ctx.informers[res]._synced.set()  # as after the first list
    return h, PodInjector(h.ctx, VaultAccess(h.ctx), OPTIONS)


def _object(h: Harness, res: Any, name: str, spec: dict[str, Any]) -> None:
    h.cache(res, {"metadata": {"name": name, "namespace": NS, "uid": f"u-{name}"}, "spec": spec})


INJECT_VSS = {
    "delivery": "inject",
    "mount": "secret",
    "path": "app/db",
    "type": "kv-v2",
    "destination": {
        "transformation": {
            "templates": {"url": {"text": "{{ user }}"}},
            "transformationRefs": [{"name": "shared"}],
        }
    },
}


def _decode(answer: dict[str, Any]) -> list[dict[str, Any]]:
    response = answer["response"]
    assert response["allowed"] is True, response
    assert response["patchType"] == "JSONPatch"
    return list(json.loads(base64.b64decode(response["patch"])))


async def test_webhook_mutates_an_opted_in_pod() -> None:
    h, injector = _harness()
    _object(h, VAULT_STATIC_SECRETS, "db", INJECT_VSS)
    h.cache(
        SECRET_TRANSFORMATIONS,
        {
            "metadata": {"name": "shared", "namespace": NS},
            "spec": {"templates": {"dsn": {"text": "x"}}, "excludes": ["^_raw$"]},
        },
    )
    _object(
        h,
        VAULT_PKI_SECRETS,
        "tls",
        {"delivery": "inject", "mount": "pki", "role": "web", "commonName": "web.app"},
    )
    original = pod(
        {
            "vaultbridge.dev/inject": "db,tls",
            "vaultbridge.dev/inject-template.db": "{{ dsn }}",
            "vaultbridge.dev/inject-file.db": "db.env",
        },
        initContainers=[{"name": "migrate", "image": "m:1"}],
        securityContext={"runAsUser": 1000},
        serviceAccountName="web",
    )
    answer = await injector.review(review(original))
    mutated = apply_patch(original, _decode(answer))

    assert mutated["metadata"]["labels"][INJECTED_LABEL] == "true"
    assert mutated["metadata"]["annotations"][INJECTED_OBJECTS_ANNOTATION] == (
        "VaultStaticSecret/db,VaultPKISecret/tls"
    )
    volumes = {v["name"]: v for v in mutated["spec"]["volumes"]}
    assert volumes[SECRETS_VOLUME]["emptyDir"]["medium"] == "Memory"
    token = volumes[TOKEN_VOLUME]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "vault" and token["expirationSeconds"] == 3600
    inits = mutated["spec"]["initContainers"]
    assert [c["name"] for c in inits] == [INIT_CONTAINER, SIDECAR_CONTAINER, "migrate"]
    init, sidecar = inits[0], inits[1]
    assert init["args"] == ["agent", "--once"] and "restartPolicy" not in init
    assert sidecar["args"] == ["agent"] and sidecar["restartPolicy"] == "Always"
    assert init["image"] == OPTIONS.image
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert init["securityContext"]["runAsUser"] == 1000
    assert init["resources"]["limits"] == {"memory": "64Mi"}
    # The token is only in the agents; the app and the pod's own init container see the files.
    for c in (init, sidecar):
        assert {m["name"] for m in c["volumeMounts"]} == {SECRETS_VOLUME, TOKEN_VOLUME}
    for c in (mutated["spec"]["containers"][0], inits[2]):
        assert c["volumeMounts"] == [
            {"name": SECRETS_VOLUME, "mountPath": "/vault/secrets", "readOnly": True}
        ]

    config = AgentConfig.from_env(init["env"][0]["value"])
    assert init["env"] == sidecar["env"]
    assert config.namespace == NS and config.run_as_user == 1000
    db, tls = config.objects
    assert (db.kind, tls.kind) == ("VaultStaticSecret", "VaultPKISecret")
    assert db.vault.address == "https://vault.example:8200"
    assert db.vault.headers == {"X-Team": "a"}
    assert (db.login.method, db.login.mount, db.login.role) == (
        "kubernetes",
        "kubernetes",
        "app-role",
    )
    assert db.login.token_path == DEFAULT_TOKEN_PATH
    assert db.file.directory == "/vault/secrets/db"
    assert (db.file.template, db.file.filename) == ("{{ dsn }}", "db.env")
    assert tls.file.template is None and tls.file.filename is None
    # The SecretTransformation is inlined; the agent parses the spec with the API model.
    transformation = db.spec["destination"]["transformation"]
    assert "transformationRefs" not in transformation
    assert set(transformation["templates"]) == {"url", "dsn"}
    assert transformation["excludes"] == ["^_raw$"]
    VaultStaticSecretSpec.model_validate(db.spec)


async def test_webhook_role_annotation_overrides_the_vault_auth_role() -> None:
    h, injector = _harness()
    _object(h, VAULT_STATIC_SECRETS, "db", INJECT_VSS | {"destination": {}})
    answer = await injector.review(
        review(pod({"vaultbridge.dev/inject": "db", "vaultbridge.dev/inject-role": "narrow"}))
    )
    mutated = apply_patch(pod({}), _decode(answer))
    config = AgentConfig.from_env(mutated["spec"]["initContainers"][0]["env"][0]["value"])
    assert config.objects[0].login.role == "narrow"


def _refusal(answer: dict[str, Any]) -> tuple[str, str]:
    response = answer["response"]
    assert response["allowed"] is False
    assert "patch" not in response
    cause = response["status"]["details"]["causes"][0]
    return cause["reason"], response["status"]["message"]


async def test_webhook_refuses_while_its_caches_are_not_synced() -> None:
    h, injector = _harness()
    _object(h, VAULT_STATIC_SECRETS, "db", INJECT_VSS | {"destination": {}})
    h.ctx.informers[VAULT_PKI_SECRETS]._synced.clear()
    reason, message = _refusal(await injector.review(review(pod({"vaultbridge.dev/inject": "db"}))))
    assert reason == "InjectNotReady" and "not synced" in message


async def test_webhook_refuses_an_object_in_secret_delivery() -> None:
    h, injector = _harness()
    _object(
        h,
        VAULT_STATIC_SECRETS,
        "db",
        {"mount": "secret", "path": "x", "type": "kv-v2", "destination": {"name": "db"}},
    )
    reason, message = _refusal(await injector.review(review(pod({"vaultbridge.dev/inject": "db"}))))
    assert reason == "NotInjectDelivery" and "delivery: inject" in message


async def test_webhook_refuses_unknown_and_cross_namespace_objects() -> None:
    _h, injector = _harness()
    reason, _ = _refusal(await injector.review(review(pod({"vaultbridge.dev/inject": "nope"}))))
    assert reason == "InjectObjectNotFound"
    reason, message = _refusal(
        await injector.review(review(pod({"vaultbridge.dev/inject": "other/db"})))
    )
    assert reason == "CrossNamespaceInject" and "other/db" in message


async def test_webhook_refuses_a_path_the_policy_denies() -> None:
    h, injector = _harness(path_policy_default="deny")
    _object(h, VAULT_STATIC_SECRETS, "db", INJECT_VSS | {"destination": {}})
    reason, message = _refusal(await injector.review(review(pod({"vaultbridge.dev/inject": "db"}))))
    assert reason == "PathNotAllowed"
    assert "secret/data/app/db" in message


async def test_webhook_refuses_an_address_outside_the_allow_list() -> None:
    h, injector = _harness(allowed_vault_addresses="https://other.example:8200")
    _object(h, VAULT_STATIC_SECRETS, "db", INJECT_VSS | {"destination": {}})
    reason, _ = _refusal(await injector.review(review(pod({"vaultbridge.dev/inject": "db"}))))
    assert reason == "VaultAddressNotAllowed"


async def test_webhook_refuses_a_namespace_the_vault_auth_does_not_allow() -> None:
    h, injector = _harness()
    auth = h.kube.stored(VAULT_AUTHS, "vaultbridge-system", "default")
    assert auth is not None
    auth["spec"]["allowedNamespaces"] = ["elsewhere"]
    h.cache(VAULT_AUTHS, auth)
    _object(h, VAULT_STATIC_SECRETS, "db", INJECT_VSS | {"destination": {}})
    reason, _ = _refusal(await injector.review(review(pod({"vaultbridge.dev/inject": "db"}))))
    assert reason == "NamespaceNotAllowed"


async def test_webhook_refuses_auth_methods_a_pod_cannot_use() -> None:
    h, injector = _harness()
    h.cache(
        VAULT_AUTHS,
        {
            "metadata": {"name": "approle", "namespace": NS, "uid": "a2"},
            "spec": {"method": "appRole", "appRole": {"roleId": "r", "secretRef": "s"}},
        },
    )
    spec = INJECT_VSS | {"destination": {}, "vaultAuthRef": "approle"}
    _object(h, VAULT_STATIC_SECRETS, "db", spec)
    reason, message = _refusal(await injector.review(review(pod({"vaultbridge.dev/inject": "db"}))))
    assert reason == "InjectAuthMethodNotSupported" and "appRole" in message


async def test_webhook_refuses_an_audience_outside_the_allowed_list() -> None:
    h, injector = _harness(allowed_token_audiences="other")
    _object(h, VAULT_STATIC_SECRETS, "db", INJECT_VSS | {"destination": {}})
    reason, _ = _refusal(await injector.review(review(pod({"vaultbridge.dev/inject": "db"}))))
    assert reason == "AudienceNotAllowed"


async def test_webhook_leaves_other_pods_and_mutated_pods_alone() -> None:
    h, injector = _harness()
    _object(h, VAULT_STATIC_SECRETS, "db", INJECT_VSS | {"destination": {}})
    plain = await injector.review(review(pod({})))
    assert plain["response"] == {"uid": "u-1", "allowed": True}
    first = pod({"vaultbridge.dev/inject": "db"})
    mutated = apply_patch(first, _decode(await injector.review(review(first))))
    again = await injector.review(review(mutated))
    assert again["response"] == {"uid": "u-1", "allowed": True}  # idempotent: no second patch


# -- the delivery target ------------------------------------------------------------------------


async def test_inject_object_writes_no_secret_and_counts_pods() -> None:
    h = make_ctx(FakeVault(kv={"secret/app/db": {"password": "never-read"}}))
    pods = Informer(h.kube, PODS)  # type: ignore[arg-type]
    h.ctx.informers[PODS] = pods
    r = VaultStaticSecretReconciler(h.ctx, h.access)
    _object(h, VAULT_STATIC_SECRETS, "db", INJECT_VSS | {"destination": {}})
    for i, objs in enumerate(
        ["VaultStaticSecret/db", "VaultStaticSecret/db,VaultPKISecret/x", "VaultPKISecret/db"]
    ):
        raw = {
            "metadata": {
                "name": f"p{i}",
                "namespace": NS,
                "annotations": {INJECTED_OBJECTS_ANNOTATION: objs, "big": "x" * 1000},
            },
            "spec": {"containers": []},
        }
        stripped = pod_metadata_only(raw)
        assert "spec" not in stripped and "big" not in stripped["metadata"]["annotations"]
        pods.store._put(stripped)
    key = ObjectKey(NS, "db")
    assert count_pods(pods, "VaultStaticSecret", key) == 2
    assert pod_keys("VaultPKISecret", pods.store.get(ObjectKey(NS, "p1")) or {}) == [
        ObjectKey(NS, "x")
    ]
    await reconciled(r, key)
    assert h.kube.stored(SECRETS, NS, "db") is None
    assert h.vault.requests == []  # nothing read from Vault
    obj = h.kube.stored(VAULT_STATIC_SECRETS, NS, "db")
    assert obj is not None
    assert obj["status"]["injectedPods"] == 2
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "InjectReady")


async def test_inject_dynamic_secret_takes_no_finalizer() -> None:
    from vaultbridge.controllers.dynamic_secret import VaultDynamicSecretReconciler

    h = make_ctx(FakeVault())
    r = VaultDynamicSecretReconciler(h.ctx, h.access)
    spec = {"delivery": "inject", "mount": "database", "path": "creds/app", "revoke": True}
    _object(h, VAULT_DYNAMIC_SECRETS, "creds", spec)
    await reconciled(r, ObjectKey(NS, "creds"))
    obj = h.kube.stored(VAULT_DYNAMIC_SECRETS, NS, "creds")
    assert obj is not None and not obj["metadata"].get("finalizers")
    assert obj["status"]["injectedPods"] == 0


# -- the API --------------------------------------------------------------------------------------


def test_inject_spec_refuses_secret_only_fields() -> None:
    base = {"delivery": "inject", "mount": "secret", "path": "x", "type": "kv-v2"}
    VaultStaticSecretSpec.model_validate(base)
    for extra in (
        {"destination": {"name": "s"}},
        {"destination": {"create": True}},
        {"destination": {"labels": {"a": "b"}}},
        {"destination": {"type": "kubernetes.io/tls"}},
        {"rolloutRestartTargets": [{"kind": "Deployment", "name": "web"}]},
    ):
        with pytest.raises(ValidationError, match="only for delivery secret"):
            VaultStaticSecretSpec.model_validate(base | extra)
    with pytest.raises(ValidationError, match=r"destination\.name is required"):
        VaultStaticSecretSpec.model_validate(base | {"delivery": "secret"})


async def test_one_projected_token_per_distinct_audience() -> None:
    h, injector = _harness(allowed_token_audiences="vault,vault-b")
    h.cache(
        VAULT_AUTHS,
        {
            "metadata": {"name": "b", "namespace": NS, "uid": "a3"},
            "spec": {
                "method": "jwt",
                "vaultConnectionRef": "vaultbridge-system/default",
                "jwt": {"role": "b-role", "serviceAccount": "x", "audiences": ["vault-b"]},
            },
        },
    )
    _object(h, VAULT_STATIC_SECRETS, "one", INJECT_VSS | {"destination": {}})
    _object(h, VAULT_STATIC_SECRETS, "two", INJECT_VSS | {"destination": {}, "vaultAuthRef": "b"})
    _object(h, VAULT_STATIC_SECRETS, "three", INJECT_VSS | {"destination": {}})
    first = pod({"vaultbridge.dev/inject": "one,two,three"})
    mutated = apply_patch(first, _decode(await injector.review(review(first))))
    volume = next(v for v in mutated["spec"]["volumes"] if v["name"] == TOKEN_VOLUME)
    sources = [s["serviceAccountToken"] for s in volume["projected"]["sources"]]
    assert [(s["audience"], s["path"]) for s in sources] == [
        ("vault", "token"),
        ("vault-b", "token-1"),
    ]
    config = AgentConfig.from_env(mutated["spec"]["initContainers"][0]["env"][0]["value"])
    assert [(o.name, o.login.method, o.login.token_path) for o in config.objects] == [
        ("one", "kubernetes", DEFAULT_TOKEN_PATH),
        ("two", "jwt", f"{TOKEN_DIR}/token-1"),
        ("three", "kubernetes", DEFAULT_TOKEN_PATH),
    ]


async def test_moving_to_inject_revokes_the_held_lease_and_deletes_the_secret() -> None:
    from vaultbridge.controllers.dynamic_secret import VaultDynamicSecretReconciler

    from ..fakes import response

    vault = FakeVault(
        responses=[
            response(
                {"username": "u1", "password": "p1"},
                lease_id="database/creds/app/1",
                duration=3600,
                renewable=True,
            )
        ]
    )
    h = make_ctx(vault)
    h.ctx.informers[SECRETS] = Informer(h.kube, SECRETS)  # type: ignore[arg-type]
    r = VaultDynamicSecretReconciler(h.ctx, h.access)
    key = ObjectKey(NS, "creds")
    spec = {
        "mount": "database",
        "path": "creds/app",
        "revoke": True,
        "destination": {"name": "creds", "create": True},
    }
    h.cache(
        VAULT_DYNAMIC_SECRETS,
        {
            "metadata": {"name": "creds", "namespace": NS, "uid": "u-c", "generation": 1},
            "spec": spec,
        },
    )
    await reconciled(r, key)
    secret = h.kube.stored(SECRETS, NS, "creds")
    assert secret is not None
    h.ctx.informers[SECRETS].store._put(secret)  # the owned-Secret cache saw the write
    obj = h.refresh(VAULT_DYNAMIC_SECRETS, key)
    assert obj["metadata"].get("finalizers")

    obj["spec"] = {"delivery": "inject", "mount": "database", "path": "creds/app", "revoke": True}
    obj["metadata"]["generation"] = 2
    h.cache(VAULT_DYNAMIC_SECRETS, obj)
    await reconciled(r, key)
    assert ("revoke", "database/creds/app/1") in h.vault.requests
    assert h.kube.stored(SECRETS, NS, "creds") is None
    after = h.kube.stored(VAULT_DYNAMIC_SECRETS, NS, "creds")
    assert after is not None and not after["metadata"].get("finalizers")
    assert "secretLease" not in after["status"] and "secretMAC" not in after["status"]
    assert {"LeaseRevoked", "SecretDeleted"} <= set(h.events.reasons())

    # Once: a later reconcile revokes nothing more.
    h.refresh(VAULT_DYNAMIC_SECRETS, key)
    requests = list(h.vault.requests)
    await reconciled(r, key)
    assert h.vault.requests == requests


@pytest.mark.parametrize(
    ("spec", "works"),
    [
        ({"method": "kubernetes", "kubernetes": {"role": "r", "serviceAccount": "a"}}, True),
        ({"method": "jwt", "jwt": {"role": "r", "serviceAccount": "a"}}, True),
        ({"method": "jwt", "jwt": {"role": "r", "secretRef": "s"}}, False),
        ({"method": "appRole", "appRole": {"roleId": "x", "secretRef": "s"}}, False),
        ({"method": "token", "token": {"secretRef": "s"}}, False),
    ],
)
def test_only_auths_a_pod_can_log_in_with_serve_inject(spec: dict[str, Any], works: bool) -> None:
    # One rule for the reconcile (the object is not Ready) and the webhook (the pod refused).
    auth = VaultAuthSpec.model_validate(spec)
    if works:
        method, role, audiences = pod_login_of(auth)
        assert (method, role, list(audiences)) == (spec["method"], "r", ["vault"])
    else:
        with pytest.raises(ReconcileProblem) as raised:
            pod_login_of(auth)
        assert raised.value.reason == "InjectAuthMethodNotSupported"
        assert not raised.value.retry
