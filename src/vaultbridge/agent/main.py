"""`vaultbridge agent [--once]`: the process inject mode runs in the pod.

- `--once` (the init container): log in, fetch every object, write its files, record what it
  holds for the sidecar, exit 0. If anything cannot be fetched or written it exits 1 with the
  reason on stderr, so the pod does not start without its secrets.
- no flag (the native sidecar): adopt what the init container wrote, then keep the files
  fresh until SIGTERM: static secrets re-read on `refreshAfter` (default 5 min), leases renewed
  at `renewalPercent`, certificates re-issued `expiryOffset` before expiry, the Vault token
  renewed at 2/3 of its TTL. A failure backs off (1 s doubling to 60 s, ±20 %) and the old
  files keep serving. After a rewrite (never the first write) `on_change` signals the app or
  touches a file. SIGTERM revokes what the specs ask to revoke and exits 0.

Configuration comes only from `VAULTBRIDGE_AGENT_CONFIG` (`vaultbridge.inject.config`); a
missing, invalid or unknown-version config exits 2 without echoing its content.

Imports nothing of the operator (tests/unit/test_import_contracts.py): config, spec models,
the `secrets/` pipeline, the Vault client and `fetch`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError

from vaultbridge.backoff import Backoff
from vaultbridge.inject.config import AGENT_CONFIG_ENV, AGENT_ROOT_ENV, CONFIG_VERSION, AgentConfig
from vaultbridge.observability.logs import configure_logging
from vaultbridge.secrets.errors import DataError
from vaultbridge.vault.errors import VaultError

from .files import UnsafeName, write_files
from .http import ThreadTransport
from .objects import AgentObjectWorker, ObjectConfigError
from .session import Sessions, TokenFileError

log = logging.getLogger("vaultbridge.agent")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
ONCE_ATTEMPTS = 3
"""`--once` tries each object this many times (1 s, 2 s apart) before giving up: a Vault
blip must not fail a pod start, a wrong role must fail it quickly."""


class ConfigError(Exception):
    """The agent's configuration is missing or invalid (message never holds its content)."""


def load_config(env: Mapping[str, str]) -> AgentConfig:
    raw = env.get(AGENT_CONFIG_ENV)
    if not raw:
        raise ConfigError(
            f"{AGENT_CONFIG_ENV} is not set: the mutating webhook puts the agent's "
            "configuration there; run the agent from an injected pod or set it by hand"
        )
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise ConfigError(f"{AGENT_CONFIG_ENV} is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise ConfigError(f"{AGENT_CONFIG_ENV} is not a JSON object")
    version = parsed.get("version", CONFIG_VERSION)
    if version != CONFIG_VERSION:
        shown = version if isinstance(version, int) else type(version).__name__
        raise ConfigError(
            f"{AGENT_CONFIG_ENV} has version {shown}, this agent knows version "
            f"{CONFIG_VERSION}: the operator and the agent image are from different releases"
        )
    try:
        return AgentConfig.model_validate(parsed)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        ]
        raise ConfigError(f"{AGENT_CONFIG_ENV} is invalid: " + "; ".join(problems[:10])) from None


def host_path(path: str, root: str | None) -> Path:
    """A path of the config, under `VAULTBRIDGE_AGENT_ROOT` when that is set."""
    return Path(root, path.lstrip("/")) if root else Path(path)


def describe_error(exc: BaseException) -> str:
    """What is safe to log about a failure: our typed errors carry no value by construction;
    anything else is named by its type only."""
    if isinstance(exc, VaultError | DataError | TokenFileError | UnsafeName | ObjectConfigError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or ''} {exc.filename or ''}".strip()
    return type(exc).__name__


class Agent:
    def __init__(self, config: AgentConfig, root: str | None) -> None:
        self.config = config
        self.root = root
        self.vault_requests = 0
        self.transport = ThreadTransport(on_request=self._count)
        self.sessions = Sessions(self.transport, lambda p: host_path(p, root))
        self.workers = [
            AgentObjectWorker(
                obj,
                self.sessions.get(obj.vault, obj.login),
                host_path(obj.file.directory, root),
            )
            for obj in config.objects
        ]
        self.backoff = Backoff(base=1.0, cap=60.0, factor=2.0, jitter=0.2)
        self._session_retry: dict[int, float] = {}
        self.stop = asyncio.Event()

    def _count(self, _operation: str, _outcome: int | str, _seconds: float) -> None:
        self.vault_requests += 1

    async def close(self) -> None:
        await self.transport.close()

    # -- one object ------------------------------------------------------------------------

    async def fetch_and_write(self, worker: AgentObjectWorker) -> bool:
        """Do what is due for `worker`; True when its files changed after the first write."""
        before = self.vault_requests
        files = await worker.step(time.time())
        requests = self.vault_requests - before
        if files is None:
            worker.save_state(worker.session.expires_at())
            log.info("%s: lease renewed (%d Vault requests)", worker.name, requests)
            return False
        result = await asyncio.to_thread(
            write_files,
            worker.directory,
            files,
            mode=self.config.file_mode,
            owner=self.config.run_as_user,
        )
        changed = result.changed and worker.delivered
        worker.delivered = True
        worker.save_state(worker.session.expires_at())
        log.info(
            "%s: %d files in %s, %d rewritten, %d removed (%d Vault requests)",
            worker.name,
            len(files),
            worker.directory,
            len(result.written),
            len(result.removed),
            requests,
        )
        return changed

    # -- --once ----------------------------------------------------------------------------

    async def run_once(self) -> int:
        for worker in self.workers:
            for attempt in range(ONCE_ATTEMPTS):
                try:
                    await self.fetch_and_write(worker)
                    break
                except Exception as exc:
                    problem = describe_error(exc)
                    if attempt + 1 == ONCE_ATTEMPTS:
                        print(
                            f"vaultbridge agent: {worker.kind} {worker.name}: cannot deliver "
                            f"its files: {problem}",
                            file=sys.stderr,
                        )
                        return EXIT_FAILED
                    log.warning("%s: attempt %d failed: %s", worker.name, attempt + 1, problem)
                    await asyncio.sleep(2.0**attempt)
        return EXIT_OK

    # -- sidecar ---------------------------------------------------------------------------

    async def run_forever(self) -> int:
        now = time.time()
        for worker in self.workers:
            if worker.load_state(now):
                worker.delivered = True
                worker.schedule(now)
                log.info("%s: adopted what the init container delivered", worker.name)
            else:
                worker.due = now
        while not self.stop.is_set():
            changed = await self._tick()
            if changed:
                await asyncio.to_thread(self.on_change)
            await self._sleep_until(self._next_wake())
        await self._release()
        return EXIT_OK

    async def _tick(self) -> bool:
        changed = False
        for session in self.sessions.all():
            if time.time() < self._session_retry.get(id(session), 0.0):
                continue
            try:
                await session.maintain()
                self.backoff.reset(id(session))
                self._session_retry.pop(id(session), None)
            except Exception as exc:
                delay = self.backoff.failure(id(session))
                self._session_retry[id(session)] = time.time() + delay
                log.warning(
                    "Vault token renewal failed: %s; retry in %.0fs", describe_error(exc), delay
                )
        for worker in self.workers:
            if self.stop.is_set():
                break
            if worker.due > time.time():
                continue
            try:
                changed = await self.fetch_and_write(worker) or changed
            except Exception as exc:
                delay = self.backoff.failure(worker.name)
                worker.due = time.time() + delay
                log.warning(
                    "%s: %s; keeping the current files, retry in %.0fs",
                    worker.name,
                    describe_error(exc),
                    delay,
                )
                continue
            self.backoff.reset(worker.name)
            worker.schedule(time.time())
        return changed

    def _next_wake(self) -> float:
        times = [w.due for w in self.workers]
        for session in self.sessions.all():
            due = session.renew_due()
            if due is not None:
                times.append(max(due, self._session_retry.get(id(session), 0.0)))
        return min(times, default=time.time() + 3600.0)

    async def _sleep_until(self, when: float) -> None:
        delay = min(max(0.0, when - time.time()), 3600.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=delay)

    async def _release(self) -> None:
        for worker in self.workers:
            try:
                await worker.release()
            except Exception as exc:
                log.warning("%s: releasing failed: %s", worker.name, describe_error(exc))

    # -- on change -------------------------------------------------------------------------

    def on_change(self) -> None:
        cfg = self.config.on_change
        if cfg.signal and cfg.signal_process:
            signal_processes(cfg.signal, cfg.signal_process)
        if cfg.touch:
            path = host_path(cfg.touch, self.root)
            try:
                path.touch(exist_ok=True)
                os.utime(path)
                log.info("touched %s", path)
            except OSError as exc:
                log.warning("cannot touch %s: %s", path, exc.strerror)


def signal_number(name: str) -> signal.Signals:
    upper = name.upper()
    try:
        return signal.Signals[upper if upper.startswith("SIG") else f"SIG{upper}"]
    except KeyError:
        raise ConfigError(f"on_change.signal {name!r} is not a signal name") from None


def signal_processes(name: str, match: str, proc: Path = Path("/proc")) -> list[int]:
    """Send signal `name` to every process (but this one) whose command line contains
    `match`; needs `shareProcessNamespace: true` to see the app's processes."""
    signum = signal_number(name)
    sent = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if match not in cmdline:
            continue
        try:
            os.kill(int(entry.name), signum)
            sent.append(int(entry.name))
        except OSError as exc:
            log.warning("cannot send %s to pid %s: %s", signum.name, entry.name, exc.strerror)
    log.info("sent %s to %d processes matching %r", signum.name, len(sent), match)
    return sent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--once",
        action="store_true",
        help="fetch and write every object's files once, then exit (the init container); "
        "exit 1 if any cannot be delivered",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("VAULTBRIDGE_AGENT_LOG_LEVEL", "info"),
        choices=("debug", "info", "warning", "error"),
        help="log level (default: $VAULTBRIDGE_AGENT_LOG_LEVEL, else info)",
    )
    parser.add_argument(
        "--log-format",
        default="json",
        choices=("json", "text"),
        help="log format on stderr (default: json)",
    )


async def _run(config: AgentConfig, root: str | None, once: bool) -> int:
    agent = Agent(config, root)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, agent.stop.set)
    try:
        return await (agent.run_once() if once else agent.run_forever())
    finally:
        await agent.close()


def run_agent(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    environ = os.environ if env is None else env
    configure_logging(args.log_level, args.log_format)
    try:
        config = load_config(environ)
        if config.on_change.signal:
            signal_number(config.on_change.signal)
        return asyncio.run(_run(config, environ.get(AGENT_ROOT_ENV) or None, args.once))
    except (ConfigError, ObjectConfigError) as exc:
        print(f"vaultbridge agent: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vaultbridge agent",
        description="Inject mode's in-pod agent: write secrets from Vault into files "
        f"(configuration in ${AGENT_CONFIG_ENV}).",
    )
    add_arguments(parser)
    return run_agent(parser.parse_args(argv))
