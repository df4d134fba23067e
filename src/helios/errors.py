"""Helios's one exception tree.

Every error Helios raises on purpose derives from :class:`HeliosError`; vendor SDK errors
are translated into this tree in one place per provider adapter, so callers never need to
import a vendor SDK to handle a failure::

    HeliosError
    ├── ConfigError                 bad settings file, key, type or value
    │   ├── UnknownModel            a model spec that neither the catalogue nor a provider knows
    │   └── MissingDependency       an optional extra is not installed (names the extra)
    ├── InputError                  bad user input: empty goal, missing or binary document, ...
    │   └── PromptTooLong           a prompt that cannot fit the chosen model's context window
    ├── BudgetExceeded              a budget window is full (names the window and reset time)
    ├── CacheBackendError           a cache store failed (fails open: a miss, never a failed call)
    ├── LedgerError                 the event ledger could not be opened, read or written
    ├── KeyStoreError               the API key store could not be opened, read or written
    │   └── KeyStoreUnavailable     it timed out or its circuit is open (503 + Retry-After)
    ├── GovernorStateError          the governor's window store could not be read or written
    ├── KeyRejected                 a presented API key is malformed, unknown, revoked or expired
    ├── TaskError                   the durable task system could not take, find or run a task
    │   └── TaskCancelled           the task was cancelled while it ran
    ├── ProviderError               a provider call failed (carries provider and model)
    │   ├── RateLimited             429 / quota; ``retry_after`` seconds when the provider said
    │   ├── ProviderTimeout         no answer in time
    │   ├── AuthenticationError     missing or rejected credentials
    │   ├── BadRequest              the provider refused the request as malformed
    │   └── ProviderUnavailable     5xx, overloaded, connection lost (``partial_text`` kept)
    └── GatewayError                what the HTTP gateway tells a client: status, kind, field
                                    (defined with its mapping in server/gateway/errors.py)

``retryable`` tells a retry policy whether trying again can help.
"""

from __future__ import annotations


class HeliosError(Exception):
    """Base class of every error Helios raises on purpose."""

    retryable: bool = False


class ConfigError(HeliosError):
    """Configuration is invalid; the message names the file, key and what was expected."""


class UnknownModel(ConfigError):
    """A model spec did not resolve to any provider or catalogue entry."""


class MissingDependency(ConfigError):
    """An optional dependency is missing; the message names the extra that installs it."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(f"{feature} needs the '{package}' package: pip install 'helios[{extra}]'")


class InputError(HeliosError):
    """User input that Helios cannot work with; the message says what and where."""


class PromptTooLong(InputError):
    """A prompt too long for the model's context window, refused before any provider call.

    ``tokens`` is the estimate (prompt plus the requested output allowance, if any) and
    ``context_window`` the model's.
    """

    def __init__(self, message: str, *, model: str, tokens: int, context_window: int) -> None:
        self.model = model
        self.tokens = tokens
        self.context_window = context_window
        super().__init__(message)


class CacheBackendError(HeliosError):
    """A cache store could not be opened, read or written.

    The cache layers catch it and carry on without the cache (a lookup becomes a miss, a
    store is skipped), so it only reaches callers from explicit operations such as opening
    a backend or invalidating entries.
    """


class LedgerError(HeliosError):
    """The event ledger could not be opened, read or written.

    The message names the store (the SQLite path, or the PostgreSQL host and port, never a
    password) and, for a row that cannot be read back, its id. Unlike the cache, the ledger
    does not fail open: events are the record of what happened, so a failed write is kept
    for retry by the :class:`~helios.ledger.writer.LedgerWriter` and reported by ``flush()``.
    """


class KeyStoreError(HeliosError):
    """The API key store could not be opened, read or written.

    Authentication fails closed on it: a server that cannot read its keys refuses calls
    (503) rather than letting them in unauthenticated. The message names the store (the
    SQLite path, or the PostgreSQL host and port), never a password and never a key.
    """


class KeyStoreUnavailable(KeyStoreError):
    """The key store did not answer in time, or its circuit breaker is open; the gateway
    answers 503 with ``Retry-After: retry_after_s``."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class GovernorStateError(HeliosError):
    """The governor's state store (its usage windows) could not be read or written.

    A reservation then cannot be checked against its budget: by default the call is refused
    (``governor.on_state_error: reject``; the gateway answers 503 with ``Retry-After``),
    or let through unbudgeted (``allow``). ``retry_after_s``: when the store may be asked
    again (its circuit breaker's cool-down), ``None`` when unknown.
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class KeyRejected(HeliosError):
    """A presented API key is malformed, unknown, revoked or expired.

    ``reason`` is one of those four words; the message never quotes the key.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"{reason} API key")


class BudgetExceeded(HeliosError):
    """A budget window has no room for the call; ``resets_at`` (epoch seconds) says when."""

    def __init__(self, message: str, *, account: str, window: str, resets_at: float | None) -> None:
        self.account = account
        self.window = window
        self.resets_at = resets_at
        super().__init__(message)


class ProviderError(HeliosError):
    """A provider call failed.

    ``attempts``: when the call was retried, why each attempt failed, oldest first (the
    last is this error's own reason); empty for a call tried once.
    """

    attempts: tuple[str, ...] = ()

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        model: str = "",
        status_code: int | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.status_code = status_code
        where = f"{provider}:{model}" if provider else ""
        super().__init__(f"{where}: {message}" if where else message)


class RateLimited(ProviderError):
    """The provider throttled the call (HTTP 429 or a quota error)."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        provider: str = "",
        model: str = "",
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, provider=provider, model=model, status_code=429)


class ProviderTimeout(ProviderError):
    """The provider did not answer within the configured timeout."""

    retryable = True


class AuthenticationError(ProviderError):
    """Credentials are missing, invalid or not allowed to use the model."""


class BadRequest(ProviderError):
    """The provider rejected the request itself; retrying the same request cannot help."""


class ProviderUnavailable(ProviderError):
    """The provider is down, overloaded or dropped the connection.

    ``partial_text`` holds what a stream had delivered before it broke, so nothing the
    caller already saw is lost.
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        partial_text: str = "",
        provider: str = "",
        model: str = "",
        status_code: int | None = None,
    ) -> None:
        self.partial_text = partial_text
        super().__init__(message, provider=provider, model=model, status_code=status_code)


def error_for_status(
    status: int,
    message: str,
    *,
    provider: str,
    model: str,
    retry_after: float | None = None,
) -> ProviderError:
    """The Helios error for a provider's HTTP status: one mapping shared by every adapter."""
    if status == 429:
        return RateLimited(message, retry_after=retry_after, provider=provider, model=model)
    error_class: type[ProviderError]
    if status in (401, 403):
        error_class = AuthenticationError
    elif status in (408, 504):
        error_class = ProviderTimeout
    elif status >= 500 or status == 409:
        error_class = ProviderUnavailable
    else:
        error_class = BadRequest
    return error_class(message, provider=provider, model=model, status_code=status)


class TaskError(HeliosError):
    """The durable task system failed: its database, or a task it cannot find or run."""


class TaskCancelled(TaskError):
    """A durable task was cancelled while it ran (``DELETE /api/v1/tasks/{id}``)."""
