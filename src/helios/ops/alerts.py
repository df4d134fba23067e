"""Alerts: one log line each, and a JSON POST to a webhook when one is configured.

Posting happens in a background task with retries and exponential backoff (a
:class:`~helios.retries.RetryPolicy`: ``backoff_s`` doubling, no cap), so raising an
alert never blocks the caller and never fails it: a webhook that stays down costs a
warning in the log, nothing more. Only posting needs ``httpx2``; it is imported when a
webhook is configured, so a missing package fails at start-up, not at the first alert.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from helios.errors import MissingDependency
from helios.retries import RetryPolicy

if TYPE_CHECKING:
    import httpx2

logger = logging.getLogger("helios.alerts")

# Statuses worth another try; any other 4xx means the request itself is wrong.
_RETRYABLE_STATUS = frozenset({408, 425, 429})


class Alerter:
    """Raises alerts: ``alert(payload)`` logs a line and, with a webhook, posts the payload.

    Call ``await aclose()`` when done: it gives in-flight posts ``close_timeout_s`` to
    finish, cancels the rest and closes the HTTP client.
    """

    def __init__(
        self,
        webhook_url: str | None,
        *,
        retries: int = 3,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        close_timeout_s: float = 2.0,
    ) -> None:
        self.webhook_url = webhook_url
        self.retry = RetryPolicy(attempts=retries + 1, base_s=backoff_s)
        self.timeout_s = timeout_s
        self.close_timeout_s = close_timeout_s
        self._client: httpx2.AsyncClient | None = None
        self._posts: set[asyncio.Task[bool]] = set()
        if webhook_url is not None:
            _require_httpx()

    def alert(self, payload: dict[str, Any]) -> None:
        """Log ``payload`` and post it in the background; returns at once, never raises."""
        logger.warning("alert: %s", json.dumps(payload, sort_keys=True, default=str))
        if self.webhook_url is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            logger.warning("alert not posted to the webhook: no event loop is running")
            return
        task = loop.create_task(self._post(self.webhook_url, payload), name="helios-alert-post")
        self._posts.add(task)
        task.add_done_callback(self._forget)

    async def wait(self, timeout_s: float | None = None) -> None:
        """Wait (at most ``timeout_s``) for the posts in flight; used by tests and shutdown."""
        if self._posts:
            await asyncio.wait(set(self._posts), timeout=timeout_s)

    async def aclose(self) -> None:
        pending = set(self._posts)
        if pending:
            _, unfinished = await asyncio.wait(pending, timeout=self.close_timeout_s)
            for task in unfinished:
                task.cancel()
            if unfinished:
                await asyncio.wait(unfinished)
                logger.warning("%d alert post(s) abandoned at shutdown", len(unfinished))
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _post(self, url: str, payload: dict[str, Any]) -> bool:
        import httpx2  # present: checked when the webhook was configured

        client = self._http()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await client.post(url, json=payload)
            except httpx2.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return True
                problem = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code not in _RETRYABLE_STATUS:
                    break
            delay = self.retry.delay_s(attempt)
            if delay is None:
                break
            await asyncio.sleep(delay)
        logger.warning("alert webhook %s failed after %d attempt(s): %s", url, attempt, problem)
        return False

    def _http(self) -> httpx2.AsyncClient:
        if self._client is None:
            import httpx2

            self._client = httpx2.AsyncClient(timeout=self.timeout_s)
        return self._client

    def _forget(self, task: asyncio.Task[bool]) -> None:
        self._posts.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("alert post failed: %r", task.exception())


def _require_httpx() -> None:
    try:
        import httpx2  # noqa: F401
    except ImportError:
        raise MissingDependency("httpx2", "server", "Alert webhooks") from None
