"""One gateway request through the runtime's engine: what the client is told, what is kept.

Every endpoint (OpenAI Chat Completions and Responses, Anthropic Messages) builds a Helios
:class:`~helios.messages.Request` and hands it here; this is the only place the gateway
calls the engine, so every call gets the cache, the router, the governor and the ledger
the same way. The request id is the call's task id, so the engine's events
(``cache_lookup``, ``route_decision``, ``persona_llm_run``, ``governor_decision``) and the
gateway's own ``gateway_request`` join in the ledger.

The answer leaves only once the request's events are committed (see
:meth:`~helios.runtime.Runtime.commit_before_answer`): a server killed after answering has
lost none of them.

A stream is opened before the response starts: the first chunk is awaited, so that a
refusal (budget, unknown model, provider down) is still an HTTP error with its status, and
the cache's verdict can go in the response headers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

from helios.engine import CompletionStream
from helios.errors import HeliosError
from helios.ledger.events import GatewayRequest
from helios.messages import Chunk, Completion, Request
from helios.runtime import Runtime
from helios.server.auth import Caller
from helios.server.gateway.cache_control import cache_status
from helios.server.gateway.errors import GatewayError, from_helios, provider_secrets

CLIENT_CLOSED = 499  # nginx's convention: the client went away before the response ended
# Where each endpoint's protocol carries the prompt, for a refusal that names the field.
_PROMPT_FIELDS = {"/v1/responses": "input"}


def require_model(caller: Caller, spec: str) -> None:
    """Refuse (403) a model outside the caller's key's allowed list."""
    if not caller.allows_model(spec):
        allowed = ", ".join(caller.models or ())
        raise GatewayError(
            403, "permission", f"this key may not use model '{spec}' (allowed: {allowed})"
        )


class GatewayCall:
    def __init__(
        self,
        runtime: Runtime,
        request: Request,
        *,
        endpoint: str,
        streaming: bool,
        end_user: str | None = None,
    ) -> None:
        self.started = time.perf_counter()
        self.id = f"req_{uuid.uuid4().hex}"
        self.runtime = runtime
        self.endpoint = endpoint
        self.requested_model = request.model or runtime.settings.default_model
        self.end_user = end_user
        self.streaming = streaming
        self.prompt_field = _PROMPT_FIELDS.get(endpoint, "messages")
        context = request.context.model_copy(update={"task_id": self.id})
        self.request = request.model_copy(update={"context": context})
        self.handle: CompletionStream = runtime.engine.call(self.request, streaming=streaming)
        self._recorded = False

    # -- running it -----------------------------------------------------------------------
    def _failure(self, exc: HeliosError) -> GatewayError:
        secrets = provider_secrets(self.runtime.settings)
        return from_helios(exc, prompt_field=self.prompt_field, secrets=secrets)

    async def complete(self) -> Completion:
        """The whole reply; a failure is raised as the :class:`GatewayError` to send."""
        try:
            async for _ in self.handle:
                pass
        except HeliosError as exc:
            error = self._failure(exc)
            self.record(error.status, error)
            await self.runtime.commit_before_answer()
            raise error from exc
        completion = self.handle.completion
        assert completion is not None  # set when the call ends without raising
        self.record(200)
        await self.runtime.commit_before_answer()
        return completion

    async def open_stream(self) -> AsyncIterator[Chunk]:
        """The stream, its first chunk already in hand (see the module docstring)."""
        chunks = aiter(self.handle)
        try:
            first: Chunk | None = await anext(chunks)
        except StopAsyncIteration:
            first = None
        except HeliosError as exc:
            error = self._failure(exc)
            self.record(error.status, error)
            await self.runtime.commit_before_answer()
            raise error from exc
        return self._rest(first, chunks)

    async def _rest(
        self, first: Chunk | None, chunks: AsyncIterator[Chunk]
    ) -> AsyncIterator[Chunk]:
        status, failure = 200, None
        try:
            if first is not None:
                yield first
            async for chunk in chunks:
                yield chunk
        except HeliosError as exc:  # after the headers: the protocol renders it in-stream
            failure = self._failure(exc)
            status = failure.status
            raise failure from exc
        except BaseException:
            status = CLIENT_CLOSED
            raise
        else:
            self.record(status)
            # before the protocol's closing events (usage, [DONE]) reach the client
            await self.runtime.commit_before_answer()
        finally:
            self.record(status, failure)

    # -- what the client is told ----------------------------------------------------------
    def headers(self) -> dict[str, str]:
        """Headers known now: all of them once the call has ended, fewer at a stream's
        start (its cost is only known at its end; the stream's last event carries usage)."""
        headers = {"X-Request-Id": self.id, **cache_status(self.handle.lookup, self.request.cache)}
        completion = self.handle.completion
        if completion is not None:
            headers["X-Helios-Model"] = f"{completion.provider}:{completion.model}"
            if completion.cost_usd is not None:
                headers["X-Helios-Cost-USD"] = f"{completion.cost_usd:.8f}"
            if completion.saved_usd is not None:
                headers["X-Helios-Cost-Saved-USD"] = f"{completion.saved_usd:.8f}"
            provider_s = completion.duration_s if completion.cache_layer is None else 0.0
            overhead_ms = max(0.0, (time.perf_counter() - self.started - provider_s) * 1000)
            headers["X-Helios-Overhead-Ms"] = f"{overhead_ms:.3f}"
        elif self.handle.route is not None:
            headers["X-Helios-Model"] = self.handle.route.model
        if self.handle.fallbacks:
            headers["X-Helios-Fallbacks"] = str(len(self.handle.fallbacks))
        return headers

    async def final_headers(self) -> dict[str, str]:
        """:meth:`headers`, plus what the caller's key has left in each of its budget
        windows, in each budget's unit (``X-Helios-Budget-Remaining: 5h=0.982; 1m=59``),
        read after the call was committed."""
        headers = self.headers()
        governor = self.runtime.engine.governor
        context = self.request.context
        if governor is None or context.key_id is None:
            return headers
        mine = f"key:{context.key_id}"
        windows = [
            f"{status.window}={status.remaining:g}"
            for status in await governor.status(context)
            if status.account == mine or status.account.startswith(f"{mine}:")
        ]
        if windows:
            headers["X-Helios-Budget-Remaining"] = "; ".join(windows)
        return headers

    def record(self, status: int, error: GatewayError | None = None) -> None:
        """The ``gateway_request`` event, once per request."""
        if self._recorded:
            return
        self._recorded = True
        lookup = self.handle.lookup
        context = self.request.context
        self.runtime.sink.emit(
            GatewayRequest(
                task_id=self.id,
                endpoint=self.endpoint,
                tenant=context.tenant,
                key_id=context.key_id,
                end_user=self.end_user,
                model=self.requested_model,
                streaming=self.streaming,
                status=status,
                duration_s=time.perf_counter() - self.started,
                cache_layer=lookup.layer if lookup is not None and lookup.hit else None,
                error=None if error is None else error.message[:500],
            )
        )
