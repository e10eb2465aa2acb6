"""Connection settings for the API server: URL, TLS and credentials.

Parsing kubeconfig files and the in-cluster service-account layout is delegated to
``lightkube.config.kubeconfig`` (it knows the file format and its corner cases); only its
plain data fields are used. TLS contexts and credential handling are built here, for the
aiohttp session, so lightkube's httpx stack never carries a request.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from vaultbridge.kube.errors import KubeConfigError

# The kubelet rotates projected service-account tokens well before expiry (at 80% of their
# lifetime, at least hourly); re-reading the file every minute follows rotation closely
# without touching the filesystem on every request.
TOKEN_FILE_REFRESH_SECONDS = 60.0

# Exec plugin credentials are refreshed this long before the expiry they announce, so a
# request never goes out with a token that expires in flight.
_EXEC_EXPIRY_MARGIN_SECONDS = 30.0

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class TokenProvider(Protocol):
    """Source of the bearer token sent with every request."""

    async def token(self) -> str:
        """Return the current token (may read a file or run a plugin)."""
        ...

    def invalidate(self) -> None:
        """Forget any cached token: the server answered 401 with it."""
        ...


class StaticToken:
    """A token written in the kubeconfig."""

    def __init__(self, token: str) -> None:
        self._token = token.strip()

    async def token(self) -> str:
        return self._token

    def invalidate(self) -> None:
        """A static token cannot be refreshed; nothing to forget."""

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"


class FileToken:
    """A token read from a file and re-read periodically (projected service-account tokens)."""

    def __init__(
        self, path: str | os.PathLike[str], refresh_seconds: float = TOKEN_FILE_REFRESH_SECONDS
    ):
        self.path = Path(path)
        self._refresh = refresh_seconds
        self._token: str | None = None
        self._read_at = 0.0

    async def token(self) -> str:
        now = time.monotonic()
        if self._token is None or now - self._read_at >= self._refresh:
            try:
                text = await asyncio.to_thread(self.path.read_text)
            except OSError as exc:
                if self._token is None:
                    raise KubeConfigError(f"cannot read token file {self.path}: {exc}") from None
                # Keep using the last good token; the kubelet may be mid-rotation.
                text = self._token
            self._token = text.strip()
            self._read_at = now
        return self._token

    def invalidate(self) -> None:
        self._read_at = 0.0

    def __repr__(self) -> str:
        return f"FileToken({str(self.path)!r})"


class ExecToken:
    """Credentials from a client-go exec plugin (``users[].user.exec`` in a kubeconfig).

    The plugin prints an ``ExecCredential``; its token is cached until the announced
    ``expirationTimestamp`` (or until a 401), then the plugin runs again.
    """

    SUPPORTED_API_VERSIONS = (
        "client.authentication.k8s.io/v1",
        "client.authentication.k8s.io/v1beta1",
        "client.authentication.k8s.io/v1alpha1",
    )

    def __init__(
        self,
        command: str,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        api_version: str = "client.authentication.k8s.io/v1beta1",
    ) -> None:
        if api_version not in self.SUPPORTED_API_VERSIONS:
            raise KubeConfigError(f"exec plugin apiVersion {api_version!r} is not supported")
        self.command = command
        self.args = list(args or [])
        self.env = dict(env or {})
        self.api_version = api_version
        self._token: str | None = None
        self._expires_at: float | None = None  # time.time() seconds
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        async with self._lock:
            if self._token is not None and (
                self._expires_at is None
                or time.time() < self._expires_at - _EXEC_EXPIRY_MARGIN_SECONDS
            ):
                return self._token
            self._token, self._expires_at = await self._run()
            return self._token

    def invalidate(self) -> None:
        self._token = None

    async def _run(self) -> tuple[str, float | None]:
        env = {**os.environ, **self.env}
        env["KUBERNETES_EXEC_INFO"] = json.dumps(
            {
                "apiVersion": self.api_version,
                "kind": "ExecCredential",
                "spec": {"interactive": False},
            }
        )
        try:
            proc = await asyncio.create_subprocess_exec(
                self.command,
                *self.args,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise KubeConfigError(f"exec plugin {self.command!r} failed to start: {exc}") from None
        stdout, _stderr = await proc.communicate()
        # stderr is not quoted: plugins may print credentials or prompts there.
        if proc.returncode != 0:
            raise KubeConfigError(f"exec plugin {self.command!r} exited with {proc.returncode}")
        try:
            status = json.loads(stdout)["status"]
            token = str(status["token"])
        except (ValueError, KeyError, TypeError):
            raise KubeConfigError(
                f"exec plugin {self.command!r} printed no ExecCredential token"
            ) from None
        expires_at: float | None = None
        stamp = status.get("expirationTimestamp")
        if isinstance(stamp, str) and stamp:
            try:
                expires_at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            except ValueError:
                expires_at = None
        return token, expires_at

    def __repr__(self) -> str:
        return f"ExecToken({self.command!r})"


class BasicAuth:
    """Username/password from a kubeconfig, sent as an ``Authorization: Basic`` header."""

    def __init__(self, username: str, password: str) -> None:
        self._header = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()

    def header(self) -> str:
        return self._header

    def __repr__(self) -> str:
        return "BasicAuth(<redacted>)"


@dataclass(frozen=True)
class KubeConfig:
    """Everything ``KubeClient`` needs to talk to one API server as one identity.

    ``ssl_context`` holds the CA trust and, for certificate auth, the client certificate; it is
    ``None`` for plain-HTTP servers. ``token`` and ``basic_auth`` are mutually exclusive.
    """

    server: str
    ssl_context: ssl.SSLContext | None = None
    token: TokenProvider | None = None
    basic_auth: BasicAuth | None = None
    namespace: str = "default"
    context_name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "server", self.server.rstrip("/"))


def load_config(
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    *,
    service_account_dir: str | os.PathLike[str] = SERVICE_ACCOUNT_DIR,
) -> KubeConfig:
    """Load connection settings.

    With ``kubeconfig`` given, that file is read. Otherwise: in-cluster service account when
    running in a pod, then ``$KUBECONFIG`` (first existing entry of a path list), then
    ``~/.kube/config``. ``context`` picks a kubeconfig context other than the current one.
    In-cluster, the token file is re-read periodically (the kubelet rotates it).
    """
    # Imported lazily: only this function needs lightkube (and its import cost).
    from lightkube.config import kubeconfig as lk
    from lightkube.core.exceptions import ConfigError

    try:
        if kubeconfig is not None:
            conf = lk.KubeConfig.from_file(kubeconfig)
        else:
            try:
                conf = lk.KubeConfig.from_service_account(service_account=service_account_dir)
            except (ConfigError, KeyError):
                conf = lk.KubeConfig.from_file(_default_kubeconfig_path())
        single = conf.get(context_name=context)
    except ConfigError as exc:
        raise KubeConfigError(str(exc)) from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise KubeConfigError(f"unusable kubeconfig: {type(exc).__name__}: {exc}") from None
    return _from_single(single)


def _default_kubeconfig_path() -> str:
    env = os.environ.get("KUBECONFIG", "")
    candidates = [p for p in env.split(os.pathsep) if p]
    for candidate in candidates:
        if Path(candidate).expanduser().is_file():
            return candidate
    return candidates[0] if candidates else "~/.kube/config"


def _from_single(single: Any) -> KubeConfig:
    """Build our settings from a lightkube ``SingleConfig`` (cluster, user, namespace)."""
    cluster = single.cluster
    user = single.user
    server: str = cluster.server
    ssl_context: ssl.SSLContext | None = None
    if server.startswith("https://"):
        ssl_context = _ssl_context(single)
    elif user is not None and (user.client_cert or user.client_cert_data):
        raise KubeConfigError("client certificate configured for a plain-HTTP server")

    token: TokenProvider | None = None
    basic: BasicAuth | None = None
    if user is not None:
        if user.token_file:
            token = FileToken(single.abs_file(user.token_file))
        elif user.token:
            token = StaticToken(user.token)
        elif user.exec is not None:
            ex = user.exec
            token = ExecToken(
                command=ex.command,
                args=list(ex.args or []),
                env={nv.name: nv.value for nv in (ex.env or [])},
                api_version=ex.apiVersion,
            )
        elif user.username and user.password:
            basic = BasicAuth(user.username, user.password)
        elif user.auth_provider:
            raise KubeConfigError("kubeconfig auth-provider plugins are not supported; use exec")
    return KubeConfig(
        server=server,
        ssl_context=ssl_context,
        token=token,
        basic_auth=basic,
        namespace=single.namespace,
        context_name=single.context_name,
    )


def _ssl_context(single: Any) -> ssl.SSLContext:
    cluster = single.cluster
    user = single.user
    try:
        if cluster.certificate_auth_data:
            ctx = ssl.create_default_context(
                cadata=base64.b64decode(cluster.certificate_auth_data).decode()
            )
        elif cluster.certificate_auth:
            ctx = ssl.create_default_context(cafile=str(single.abs_file(cluster.certificate_auth)))
        else:
            ctx = ssl.create_default_context()
        if cluster.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if user is not None and (user.client_cert or user.client_cert_data):
            _load_client_cert(ctx, single)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise KubeConfigError(f"cannot build TLS context: {type(exc).__name__}: {exc}") from None
    return ctx


def _load_client_cert(ctx: ssl.SSLContext, single: Any) -> None:
    user = single.user
    if user.client_cert_data or user.client_key_data:
        # ssl can only load a key pair from files: write them to a private temporary
        # directory, load them into the context, and remove them at once.
        with tempfile.TemporaryDirectory(prefix="vaultbridge-") as tmp:
            cert_path = Path(tmp, "tls.crt")
            key_path = Path(tmp, "tls.key")
            _write_private(
                cert_path,
                base64.b64decode(user.client_cert_data)
                if user.client_cert_data
                else Path(single.abs_file(user.client_cert)).read_bytes(),
            )
            _write_private(
                key_path,
                base64.b64decode(user.client_key_data)
                if user.client_key_data
                else Path(single.abs_file(user.client_key)).read_bytes(),
            )
            ctx.load_cert_chain(str(cert_path), str(key_path))
    else:
        ctx.load_cert_chain(
            str(single.abs_file(user.client_cert)), str(single.abs_file(user.client_key))
        )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
