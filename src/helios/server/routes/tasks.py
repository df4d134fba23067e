"""``/api/v1/tasks``: durable tasks over HTTP (see :mod:`helios.tasks`).

``POST`` checks a task (a 422 names the field) and queues it (``POST /upload`` takes the
same task with its documents as uploaded files, multipart/form-data): 202 with its id (200 and the
first task for a repeated idempotency key; 409 for that key with another body). ``GET
/{id}`` shows its status, stages, result, cost or error; ``GET`` lists the caller's tasks;
``DELETE /{id}`` cancels one (the running persona call stops within ``tasks.cancel_poll_s``).
``GET /{id}/events`` follows it as Server-Sent Events: every item its stream holds (stages,
text chunks, gate verdicts, the result), each with an id; a client that reconnects with
``Last-Event-ID`` gets what came after, nothing twice and nothing missed, then one ``end``
event with the final status. Tenants see only their own tasks; an admin sees every one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import (
    APIRouter,
    File,
    Form,
    HTTPException,
    Query,
    Request,
    Response,
    UploadFile,
    status,
)
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from helios.server.auth import Authenticated, Caller
from helios.server.openapi import errors
from helios.server.routes.gateway_body import SSE_HEADERS
from helios.server.state import ServerState
from helios.tasks.service import TaskConflict, TaskNotFound, TaskService
from helios.tasks.spec import InlineDocument, TaskInputError, TaskRequest, check_request

PREFIX = "/api/v1/tasks"
JSON_OVERHEAD_BYTES = 1_000_000
"""Room for JSON escapes and the other fields above ``tasks.max_task_bytes`` of documents."""
HEARTBEAT_S = 15.0
UPLOAD_EXAMPLE = '{"goal": "Should we adopt microservices?", "priority": 3}'
StatusFilter = Literal["queued", "running", "succeeded", "failed", "cancelled"]


def router(state: ServerState) -> APIRouter:
    limit = state.settings.tasks.max_task_bytes * 2 + JSON_OVERHEAD_BYTES
    routes = APIRouter(prefix=PREFIX, tags=["tasks"], max_body_size=limit)

    def service() -> TaskService:
        if state.tasks is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "this server takes no tasks (tasks.enabled is false, or it is starting)",
            )
        return state.tasks

    @routes.post(
        "",
        status_code=status.HTTP_202_ACCEPTED,
        responses=errors(400, 401, 403, 409, 413, 422, 503),
        summary="Queue a task: a dialectic run, a DAG or an ask",
    )
    async def submit(
        body: TaskRequest, caller: Authenticated, response: Response
    ) -> dict[str, Any]:
        tasks = service()
        try:
            # off the loop: an admin's paths are read, a DAG's personas loaded
            spec = await asyncio.to_thread(
                check_request,
                body,
                state.settings,
                tenant=caller.tenant,
                key_id=caller.key_id,
                admin=caller.admin,
            )
            submitted = await tasks.submit(spec, idempotency_key=body.idempotency_key)
        except TaskInputError as exc:
            raise _unprocessable(exc.field, exc.reason) from None
        except TaskConflict as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        if state.runtime is not None:  # its task_queued is durable before the 202
            await state.runtime.commit_before_answer()
        if submitted.existing:
            response.status_code = status.HTTP_200_OK
        response.headers["Location"] = f"{PREFIX}/{submitted.task_id}"
        return {"id": submitted.task_id, "status": submitted.status, "existing": submitted.existing}

    @routes.post(
        "/upload",
        status_code=status.HTTP_202_ACCEPTED,
        responses=errors(400, 401, 403, 409, 413, 422, 503),
        summary="Queue a task with its documents uploaded as files (multipart/form-data)",
        openapi_extra={
            "requestBody": {
                "content": {"multipart/form-data": {"example": {"task": UPLOAD_EXAMPLE}}}
            }
        },
    )
    async def upload(
        task: Annotated[
            str,
            Form(
                description="the task: POST /api/v1/tasks's JSON body",
                examples=[UPLOAD_EXAMPLE],
            ),
        ],
        caller: Authenticated,
        response: Response,
        documents: Annotated[list[UploadFile] | None, File(description="UTF-8 text files")] = None,
    ) -> dict[str, Any]:
        try:
            body = TaskRequest.model_validate_json(task)
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in error["loc"])
            raise _unprocessable(f"task.{where}" if where else "task", error["msg"]) from None
        files = [await _read(index, upload) for index, upload in enumerate(documents or [])]
        body = body.model_copy(update={"documents": [*body.documents, *files]})
        return await submit(body, caller, response)

    @routes.get("", responses=errors(401, 422, 503), summary="The caller's tasks, newest first")
    async def list_tasks(
        caller: Authenticated,
        task_status: Annotated[StatusFilter | None, Query(alias="status")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> dict[str, Any]:
        found = await service().list_tasks(_tenant(caller), status=task_status, limit=limit)
        return {"tasks": found}

    @routes.get("/{task_id}", responses=errors(401, 404, 503), summary="One task")
    async def show(task_id: str, caller: Authenticated) -> dict[str, Any]:
        try:
            return await service().describe(task_id, _tenant(caller))
        except TaskNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None

    @routes.delete("/{task_id}", responses=errors(401, 404, 409, 503), summary="Cancel a task")
    async def cancel(task_id: str, caller: Authenticated) -> dict[str, Any]:
        try:
            before = await service().cancel(task_id, _tenant(caller), key_id=caller.key_id)
        except TaskNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        except TaskConflict as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        if state.runtime is not None:
            await state.runtime.commit_before_answer()
        return {"id": task_id, "status": "cancelled", "was": before}

    @routes.get(
        "/{task_id}/events",
        responses=errors(401, 404, 503),
        summary="Follow a task as Server-Sent Events (Last-Event-ID resumes)",
    )
    async def events(task_id: str, caller: Authenticated, request: Request) -> StreamingResponse:
        tasks = service()
        try:
            await tasks.status(task_id, _tenant(caller))
        except TaskNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        after = _last_event_id(request.headers.get("last-event-id"))
        poll_s = state.settings.tasks.stream_poll_s
        return StreamingResponse(
            _follow(tasks, task_id, _tenant(caller), after, poll_s),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )

    return routes


async def _read(index: int, upload: UploadFile) -> InlineDocument:
    raw = await upload.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _unprocessable(f"documents[{index}]", "not UTF-8 text") from None
    name = upload.filename or f"document-{index + 1}"
    if not text.strip():
        raise _unprocessable(f"documents[{index}]", f"'{name}' is empty")
    try:
        return InlineDocument(name=name, text=text)
    except ValidationError as exc:
        message = exc.errors(include_url=False)[0]["msg"]
        raise _unprocessable(f"documents[{index}].name", message) from None


def _tenant(caller: Caller) -> str | None:
    return None if caller.admin else caller.tenant


def _unprocessable(field: str, message: str) -> HTTPException:
    location = ["body", *field.replace("[", ".").replace("]", "").split(".")]
    detail = [{"loc": location, "msg": message, "type": "value_error"}]
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


def _last_event_id(raw: str | None) -> tuple[int, int] | None:
    """``"offset-index"`` of the last item a client saw; anything else starts afresh."""
    if raw is None:
        return None
    offset, _, index = raw.strip().partition("-")
    if offset.isdigit() and index.isdigit():
        return int(offset), int(index)
    return None


async def _follow(
    tasks: TaskService,
    task_id: str,
    tenant: str | None,
    after: tuple[int, int] | None,
    poll_s: float,
) -> AsyncIterator[str]:
    start = after[0] if after is not None else 0
    stream = tasks.events(task_id, offset=start, poll_s=poll_s)
    pending: asyncio.Task[tuple[int, list[dict[str, Any]]]] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(stream.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=HEARTBEAT_S)
            if not done:
                yield ": still running\n\n"  # keeps proxies from closing a quiet stream
                continue
            try:
                offset, batch = pending.result()
            except StopAsyncIteration:
                break
            pending = None
            for index, item in enumerate(batch):
                if after is not None and (offset, index) <= after:
                    continue
                data = json.dumps(item, separators=(",", ":"))
                yield f"id: {offset}-{index}\nevent: {item['type']}\ndata: {data}\n\n"
        final = await tasks.describe(task_id, tenant)
        end = {k: final.get(k) for k in ("id", "status", "error", "cost_usd")}
        yield f"event: end\ndata: {json.dumps(end)}\n\n"
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
        await stream.aclose()
