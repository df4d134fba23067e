"""What every gateway route does around its call: find the serving runtime, and turn any
failure into the client's protocol's error (OpenAI's or Anthropic's shape)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi.responses import Response
from pydantic import ValidationError

from helios.errors import HeliosError
from helios.runtime import Runtime
from helios.server.gateway.errors import GatewayError, from_helios, provider_secrets
from helios.server.routes.gateway_body import field_error
from helios.server.state import ServerState


def serving_runtime(state: ServerState) -> Runtime:
    """The runtime, or a 503 while the server starts or stops."""
    if state.runtime is None:
        raise GatewayError(503, "overloaded", "Helios is starting or stopping", retry_after_s=1)
    return state.runtime


async def answer(
    state: ServerState,
    handler: Callable[[], Awaitable[Response]],
    render: Callable[[GatewayError], Response],
) -> Response:
    """``handler()``'s response, or its failure rendered by ``render``; a provider's key it
    may echo is blanked first."""
    try:
        return await handler()
    except GatewayError as error:
        return render(error)
    except HeliosError as error:
        return render(from_helios(error, secrets=provider_secrets(state.settings)))
    except ValidationError as exc:  # a value the protocol's model let through, Helios's not
        return render(field_error(exc))
