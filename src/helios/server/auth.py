"""Who is calling: the API key a request carries, its tenant, and the rule without keys.

Every route of ``helios serve`` takes the caller as a FastAPI dependency, except
``/health`` (anyone gets its status; :data:`Observer` shows the details to operators only)
and the OpenAPI pages (``/docs``, ``/openapi.json``). For route modules::

    from helios.server.auth import Authenticated, Caller

    @routes.post("/v1/chat/completions")
    async def chat(body: ChatBody, caller: Authenticated) -> Response:
        if not caller.allows_model(body.model):
            ...                                   # 403: the key may not call that model
        request = Request.of(..., context=caller.context(task_id=...))
        reply = await state.runtime.engine.complete(request)   # held to the key's budgets

- ``Authenticated`` is ``Annotated[Caller, Depends(authenticate)]``; ``AdminCaller`` the
  same for routes only an admin key may use (401 without a key, 403 for another key);
  ``OperatorCaller`` for what operators read (``/metrics``): an admin key, or anyone while
  the server runs without keys; ``Observer``: the caller if it proved to be one, else
  ``None`` (never a refusal).
- ``authenticate`` (the dependency behind both) reads the key from
  ``Authorization: Bearer <key>`` (the OpenAI SDKs) or ``x-api-key: <key>`` (Anthropic's),
  both declared as OpenAPI security schemes (``/docs`` offers to send a key).
- ``Caller`` (frozen): ``key_id: str | None`` (``None``: no key, see below), ``tenant: str``,
  ``admin: bool``, ``models: tuple[str, ...] | None`` (the model specs the key may call;
  ``None``: any), ``operator: bool`` (may see where the stores are and why they fail: file
  paths, ``host:port/db``, their errors; admin keys, and calls without a key to a server on
  loopback, which come from this machine);
  ``context(*, task_id=None, priority="normal") -> CallContext`` (tenant and key id set:
  the governor holds the call to the key's budget and rate limit, and its
  ``governor_decision`` events name both; the cache keeps the tenant's entries apart);
  ``allows_model(spec) -> bool`` (specs compared as written: no alias resolution);
  ``tenant_for(asked) -> str``, the tenant a request body may name (only an admin key may
  name another tenant than its own: 403).

Refusals are ``HTTPException``: 401 for a missing, malformed, unknown, revoked or expired
key (``WWW-Authenticate: Bearer``; the reason in a few words, never the key), 403 for a
key that may not do what it asked, 503 when the key store cannot be read (authentication
fails closed), with ``Retry-After`` (when the store's circuit breaker tries it again).
Route modules that answer in a protocol's own error shape translate them.

Secure by default: while the key store holds no key at all, a server bound to a loopback
address serves everyone as the tenant ``default`` without a key (a key sent anyway is
ignored: the SDKs insist on sending one) and says so at start-up; bound to any other
address it refuses to start unless ``server.allow_unauthenticated`` says to serve it open
(with a warning). Once a key exists (revoked ones count) every call needs one. A server on
a non-loopback address always warns at start-up that other machines can reach it.
Keys are checked through the runtime's :class:`~helios.keys.directory.KeyDirectory`, so a
revocation made by another process counts within ``keys.cache_s``.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import socket
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from helios.breaker import failure_log_level
from helios.errors import ConfigError, KeyRejected, KeyStoreError, KeyStoreUnavailable
from helios.keys.directory import KeyDirectory
from helios.messages import CallContext, Priority

logger = logging.getLogger("helios.server")

DEFAULT_TENANT = "default"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="helios"'}
MISSING = "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"


@dataclass(frozen=True)
class Caller:
    """Who a request comes from (see the module docstring)."""

    key_id: str | None
    tenant: str
    admin: bool = False
    models: tuple[str, ...] | None = None
    operator: bool = False

    def context(self, *, task_id: str | None = None, priority: Priority = "normal") -> CallContext:
        return CallContext(
            task_id=task_id, priority=priority, tenant=self.tenant, key_id=self.key_id
        )

    def allows_model(self, spec: str) -> bool:
        return self.models is None or spec in self.models

    def tenant_for(self, asked: str | None) -> str:
        """The tenant a request acts for: its own, or the one it names if it is an admin's."""
        if asked is None or asked == self.tenant or self.admin:
            return self.tenant if asked is None else asked
        who = "this key belongs to" if self.key_id is not None else "calls without a key act for"
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"{who} tenant '{self.tenant}': only an admin key may name another tenant",
        )


ANONYMOUS = Caller(key_id=None, tenant=DEFAULT_TENANT)
"""Who calls a server serving without keys on a non-loopback address."""
LOCAL_ANONYMOUS = Caller(key_id=None, tenant=DEFAULT_TENANT, operator=True)
"""Who calls a server serving without keys on loopback: someone on this machine."""


class KeyGuard:
    """Turns a request's headers into a :class:`Caller`; one per app, built at start-up."""

    def __init__(
        self, directory: KeyDirectory, *, host: str, allow_unauthenticated: bool = False
    ) -> None:
        self.directory = directory
        self.host = host
        self.loopback = is_loopback(host)
        self.allow_unauthenticated = allow_unauthenticated
        self.open_to = LOCAL_ANONYMOUS if self.loopback else ANONYMOUS
        """Who calls while no key exists (when serving without keys is allowed here)."""

    async def caller(self, presented: str | None) -> Caller:
        """The caller presenting ``presented`` (``None``: no key sent)."""
        try:
            if (
                self.loopback or self.allow_unauthenticated
            ) and not await self.directory.any_keys():
                return self.open_to
            if presented is None:
                raise _unauthorized(MISSING)
            key = await self.directory.authenticate(presented)
        except KeyRejected as exc:
            raise _unauthorized(str(exc)) from None
        except KeyStoreError as exc:
            # names the store, never a key; a warning per call only while its circuit is closed
            logger.log(failure_log_level(self.directory.store.breaker), "refusing calls: %s", exc)
            retry_after = exc.retry_after_s if isinstance(exc, KeyStoreUnavailable) else 1.0
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "the API key store is unavailable",
                headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
            ) from None
        return Caller(
            key_id=key.id,
            tenant=key.tenant,
            admin=key.admin,
            models=key.models,
            operator=key.admin,
        )

    async def start_up_notice(self) -> str | None:
        """What ``helios serve`` says at start-up about authentication (see
        :func:`exposure`)."""
        has_keys = await self.directory.any_keys()
        return exposure(
            self.host, has_keys=has_keys, allow_unauthenticated=self.allow_unauthenticated
        )


def exposure(host: str, *, has_keys: bool, allow_unauthenticated: bool = False) -> str | None:
    """The one line ``helios serve`` says at start-up about who can reach it: ``None`` on
    loopback with keys; a notice on loopback without keys; a line starting ``warning:`` on
    any other address. Without keys on another address, unless ``allow_unauthenticated``:
    :class:`~helios.errors.ConfigError` (one line)."""
    if is_loopback(host):
        if has_keys:
            return None
        return (
            f"no API keys: serving unauthenticated calls as tenant '{DEFAULT_TENANT}' on"
            f" loopback {host} only (create one with `helios keys create --tenant NAME` to"
            " require keys)"
        )
    if has_keys:
        return (
            f"warning: serving on {host}, which other machines can reach: every call needs an"
            " API key; keys travel in clear text unless TLS (a reverse proxy) is in front"
        )
    if not allow_unauthenticated:
        raise ConfigError(
            f"refusing to serve on {host} without API keys: create one with"
            " `helios keys create --tenant NAME`, bind to 127.0.0.1, or pass"
            " --allow-unauthenticated (server.allow_unauthenticated) to serve it open"
        )
    return (
        f"warning: serving on {host} WITHOUT API keys (server.allow_unauthenticated): anyone"
        f" who can reach it calls models as tenant '{DEFAULT_TENANT}' and uses the cache API"
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine: a loopback address, or a name
    every address of which is one (``localhost``). An unresolvable name is not."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    addresses = {info[4][0] for info in found}
    return bool(addresses) and all(
        ipaddress.ip_address(str(address).split("%")[0]).is_loopback for address in addresses
    )


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, reason, headers=CHALLENGE)


# Declared as security schemes so that /docs offers to send a key; read by authenticate().
_BEARER = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>` (OpenAI SDKs)")
_API_KEY = APIKeyHeader(
    name="x-api-key", auto_error=False, description="`x-api-key: <key>` (Anthropic SDKs)"
)


async def authenticate(
    connection: HTTPConnection,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
    api_key: Annotated[str | None, Security(_API_KEY)],
) -> Caller:
    """The FastAPI dependency: the caller of this request, or a 401/503."""
    guard: KeyGuard | None = connection.app.state.helios.auth
    if guard is None:  # the app is not running (its lifespan builds the guard)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the server is starting")
    return await guard.caller(_presented(connection, bearer, api_key))


def _presented(
    connection: HTTPConnection, bearer: HTTPAuthorizationCredentials | None, api_key: str | None
) -> str | None:
    # Bearer first, then x-api-key; an Authorization of another scheme is checked as a key,
    # so it is refused as malformed rather than mistaken for no key at all.
    presented = bearer.credentials if bearer is not None else api_key
    if presented is None:
        presented = connection.headers.get("authorization")
    return presented


async def observe(
    connection: HTTPConnection,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
    api_key: Annotated[str | None, Security(_API_KEY)],
) -> Caller | None:
    """The caller if the request proves who it is, else ``None``: never a refusal (a probe
    of ``/health`` without a key still learns the status)."""
    guard: KeyGuard | None = connection.app.state.helios.auth
    if guard is None:
        return None
    try:
        return await guard.caller(_presented(connection, bearer, api_key))
    except HTTPException:
        return None


Authenticated = Annotated[Caller, Depends(authenticate)]
Observer = Annotated[Caller | None, Depends(observe)]


async def require_admin(caller: Authenticated) -> Caller:
    """The FastAPI dependency for admin routes: 401 without a key, 403 for a non-admin key."""
    if caller.key_id is None:
        raise _unauthorized(
            "the admin API needs an admin key: create one with "
            "`helios keys create --tenant NAME --admin`"
        )
    if not caller.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this key is not an admin key")
    return caller


AdminCaller = Annotated[Caller, Depends(require_admin)]


async def require_operator(caller: Authenticated) -> Caller:
    """The FastAPI dependency for what operators read: an admin key (another key: 403), or
    anyone while the server serves without keys."""
    if caller.key_id is not None and not caller.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this key is not an admin key")
    return caller


OperatorCaller = Annotated[Caller, Depends(require_operator)]
