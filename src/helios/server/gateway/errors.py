"""What a failed gateway call tells its client: an HTTP status, a kind, a reason.

Helios's exceptions map here in one place; each protocol renders a :class:`GatewayError`
in its own shape (``{"error": {...}}`` for OpenAI, ``{"type": "error", ...}`` for
Anthropic). Bad input is a 4xx naming the field; a refused budget a 429 naming the window
and when it frees; a provider's failure a 502/503/504 with the provider's reason. Never a
traceback.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Literal

from helios.config.providers import DEFAULT_KEY_VARIABLES
from helios.config.settings import Settings
from helios.errors import (
    AuthenticationError,
    BadRequest,
    BudgetExceeded,
    ConfigError,
    GovernorStateError,
    HeliosError,
    InputError,
    PromptTooLong,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    UnknownModel,
)

ErrorKind = Literal[
    "invalid_request",
    "authentication",
    "permission",
    "not_found",
    "rate_limit",
    "budget",
    "upstream",
    "overloaded",
    "timeout",
    "internal",
]


class GatewayError(HeliosError):
    """A refusal or failure as the client sees it; ``param`` names the offending field."""

    def __init__(
        self,
        status: int,
        kind: ErrorKind,
        message: str,
        *,
        param: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.param = param
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


def invalid(param: str, message: str) -> GatewayError:
    """A 400 for one field of the request."""
    return GatewayError(400, "invalid_request", f"{param}: {message}", param=param)


REDACTED = "[redacted]"


def from_helios(
    error: HeliosError, *, prompt_field: str = "messages", secrets: Collection[str] = ()
) -> GatewayError:
    """The client's view of an error raised while serving its call, with every one of
    ``secrets`` (:func:`provider_secrets`) blanked out: a provider may echo the key it was
    sent in its refusal, and that text travels to the client and the ledger.
    ``prompt_field`` is where the endpoint's protocol carries the prompt (named by a prompt
    too long)."""
    translated = _translate(error, prompt_field)
    message = translated.message
    for secret in secrets:
        message = message.replace(secret, REDACTED)
    if message == translated.message:
        return translated
    return GatewayError(
        translated.status,
        translated.kind,
        message,
        param=translated.param,
        retry_after_s=translated.retry_after_s,
    )


def provider_secrets(settings: Settings) -> tuple[str, ...]:
    """The API keys Helios holds for providers (settings, then environment), longest first."""
    names = sorted({*settings.providers, *DEFAULT_KEY_VARIABLES})
    keys = {settings.provider(name).key(name) for name in names}
    # a key shorter than this is a placeholder ("x"), and blanking it would garble messages
    return tuple(sorted((key for key in keys if key and len(key) >= 8), key=len, reverse=True))


def _translate(error: HeliosError, prompt_field: str) -> GatewayError:
    if isinstance(error, GatewayError):
        return error
    if isinstance(error, PromptTooLong):
        return invalid(prompt_field, str(error))
    if isinstance(error, BudgetExceeded):
        return _budget(error)
    if isinstance(error, GovernorStateError):
        # the budgets cannot be checked: refused, as for a full window, but for now only
        return GatewayError(
            503,
            "overloaded",
            f"budgets cannot be checked: {error}",
            retry_after_s=error.retry_after_s or 1.0,
        )
    if isinstance(error, UnknownModel):
        return GatewayError(404, "not_found", str(error), param="model")
    if isinstance(error, (ConfigError, InputError)):
        return GatewayError(400, "invalid_request", str(error))
    if isinstance(error, ProviderError):
        return _provider(error)
    return GatewayError(500, "internal", f"{type(error).__name__}: {error}")


def _budget(error: BudgetExceeded) -> GatewayError:
    message = f"budget '{error.account}' window '{error.window}' has no room"
    retry_after = None
    if error.resets_at is not None:
        reset = datetime.fromtimestamp(error.resets_at, tz=UTC).isoformat(timespec="seconds")
        message += f"; room again at {reset}"
        retry_after = max(0.0, error.resets_at - time.time())
    return GatewayError(429, "budget", message, retry_after_s=retry_after)


def _provider(error: ProviderError) -> GatewayError:
    # The adapters put "provider:model: reason" in the message: the client learns which
    # upstream failed and why, and nothing of Helios's own credentials.
    reason = str(error)
    if isinstance(error, RateLimited):
        return GatewayError(429, "rate_limit", reason, retry_after_s=error.retry_after)
    if isinstance(error, BadRequest):
        return GatewayError(400, "invalid_request", reason)
    if isinstance(error, AuthenticationError):
        return GatewayError(502, "upstream", f"the provider refused Helios's credentials: {reason}")
    if isinstance(error, ProviderTimeout):
        return GatewayError(504, "timeout", reason)
    if error.retryable:
        return GatewayError(503, "overloaded", reason, retry_after_s=1.0)
    return GatewayError(502, "upstream", reason)
