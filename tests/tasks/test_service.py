from __future__ import annotations

from helios.tasks.host import TaskHost
from helios.tasks.service import TaskService
from helios.tasks.spec import InlineDocument, TaskRequest, check_request


async def test_a_dialectic_task_runs_to_its_result_and_streams_its_stages(host: TaskHost) -> None:
    service = TaskService(host.runtime.sink)
    request = TaskRequest(
        goal="Should we split the monolith?",
        documents=[InlineDocument(name="notes.md", text="Deploy independence matters.\n" * 5)],
    )
    spec = check_request(request, host.runtime.settings, tenant="default", key_id=None, admin=False)
    submitted = await service.submit(spec)
    items = [
        item async for _, batch in service.events(submitted.task_id, poll_s=0.01) for item in batch
    ]
    kinds = [item["type"] for item in items]
    assert kinds[-1] == "result", kinds
    assert {"stage", "chunk", "stage_done", "gate"} <= set(kinds)
    view = await service.describe(submitted.task_id, "default")
    assert view["status"] == "succeeded"
    assert view["result"]["answer"].startswith("Start with a modular monolith")
    assert [s["stage"] for s in view["stages"]] == ["thesis", "antithesis", "synthesis", "judge"]
