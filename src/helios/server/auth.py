"""Who is calling: the caller of every gateway route, as a FastAPI dependency.

``caller: Caller = Depends(authenticate)`` gives the route the caller's tenant and key, the
:class:`~helios.messages.CallContext` its calls carry, and the models it may use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from helios.messages import CallContext
from helios.server.gateway.errors import GatewayError

DEFAULT_TENANT = "default"


@dataclass(frozen=True, slots=True)
class Caller:
    tenant: str = DEFAULT_TENANT
    key_id: str | None = None
    admin: bool = False
    models: tuple[str, ...] | None = None
    """The model specs this caller may ask for; ``None``: any."""

    def context(self) -> CallContext:
        """The context of a call made for this caller."""
        return CallContext(tenant=self.tenant, key_id=self.key_id)

    def check_model(self, spec: str) -> None:
        """Refuse (403) a model outside the caller's allowed list."""
        if self.models is not None and spec not in self.models:
            allowed = ", ".join(self.models)
            raise GatewayError(
                403, "permission", f"this key may not use model '{spec}' (allowed: {allowed})"
            )


async def authenticate() -> Caller:
    """The caller of an unauthenticated server: the default tenant."""
    return Caller()


CallerDep = Annotated[Caller, Depends(authenticate)]
"""A route's ``caller: CallerDep`` parameter."""
