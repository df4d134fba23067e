"""``helios keys`` and the loopback rule of ``helios serve``: run in-process through the real
entry point, with the key store, ledger and governor state in the test's directory."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx2
import pytest

from helios.config.settings import load_settings
from helios.errors import BudgetExceeded
from helios.messages import Request
from helios.providers.function import FunctionProvider
from helios.runtime import Runtime
from tests.cli.conftest import RunCli


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keys, ledger and governor state in this test's directory, never the session's."""
    path = tmp_path / "data"
    monkeypatch.setenv("HELIOS_DATA_DIR", str(path))
    return path


def test_create_shows_the_key_once_list_never_does(run_cli: RunCli) -> None:
    created = run_cli(
        "keys", "create", "--tenant", "acme", "--name", "ci", "--budget", "20usd/5h",
        "--rpm", "60", "--models", "sonnet,gpt-mini", "--expires", "30d",
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr
    [key] = created.stdout.splitlines()
    key_id = key.split("-")[1]
    assert key.startswith("hk-") and len(key) == 59
    assert created.stderr.startswith(f"created key {key_id} for tenant acme (20usd/5h; 60 rpm;")
    assert "shown only this once" in created.stderr and key not in created.stderr
    admin = run_cli("keys", "create", "--tenant", "ops", "--admin", "--json")
    made = json.loads(admin.stdout)
    assert (made["tenant"], made["admin"], made["status"]) == ("ops", True, "active")
    assert made["key"].startswith(f"hk-{made['id']}-")

    listed = run_cli("keys", "list")
    as_json = run_cli("keys", "list", "--json")
    assert listed.exit_code == 0 and as_json.exit_code == 0
    for text in (listed.stdout, as_json.stdout):
        assert key not in text and made["key"] not in text
        assert key.rsplit("-", 1)[1] not in text
    assert (
        key_id in listed.stdout
        and "20usd/5h" in listed.stdout
        and "sonnet,gpt-mini" in listed.stdout
    )
    rows = json.loads(as_json.stdout)["keys"]
    assert [(row["id"], row["tenant"], row["rpm"]) for row in rows] == [
        (key_id, "acme", 60),
        (made["id"], "ops", None),
    ]
    assert set(rows[0]) == {
        "id", "tenant", "name", "admin", "budget", "rpm", "models",
        "expires_at", "created_at", "revoked_at", "status",
    }  # fmt: skip


def test_revoke(run_cli: RunCli) -> None:
    key = run_cli("keys", "create", "--tenant", "acme").stdout.strip()
    key_id = key.split("-")[1]
    revoked = run_cli("keys", "revoke", key_id)
    assert (revoked.exit_code, revoked.stdout.strip()) == (
        0,
        f"revoked key {key_id} of tenant acme",
    )
    again = run_cli("keys", "revoke", key, "--json")  # the whole key names it too
    assert again.exit_code == 0 and json.loads(again.stdout)["status"] == "revoked"
    assert key not in again.stdout + again.stderr
    [row] = json.loads(run_cli("keys", "list", "--json").stdout)["keys"]
    assert row["status"] == "revoked" and row["revoked_at"] is not None
    unknown = run_cli("keys", "revoke", "ffffffffffff")
    assert (unknown.exit_code, unknown.stderr.strip()) == (
        2,
        "error: no such key: `helios keys list` shows the ids",
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("--budget", "20xyz/5h"), "--budget: '20xyz/5h' is not a budget"),
        (("--budget", "20usd/soon"), "--budget: '20usd/soon': the window 'soon' is not"),
        (("--expires", "soon"), "--expires: 'soon' is not a duration"),
        (("--rpm", "0"), "--rpm: 0 requests per minute: give at least 1"),
        (("--models", "a,,b"), "--models: give model specs separated by commas"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(
    run_cli: RunCli, args: tuple[str, ...], error: str
) -> None:
    result = run_cli("keys", "create", "--tenant", "acme", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {error}") and result.stderr.count("\n") == 1
    assert result.stdout == ""


@pytest.mark.parametrize("tenant", ["a b", "acme:eu", "-acme", "é"])
def test_bad_tenants_are_one_line(run_cli: RunCli, tenant: str) -> None:
    result = run_cli("keys", "create", "--tenant", tenant)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: --tenant: '{tenant}' is not a tenant name")
    assert result.stderr.count("\n") == 1


def test_serve_refuses_a_public_address_without_keys(run_cli: RunCli) -> None:
    result = run_cli("serve", "--host", "0.0.0.0", "--port", "1")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: refusing to serve on 0.0.0.0 without API keys: create one with"
        " `helios keys create --tenant NAME`, bind to 127.0.0.1, or pass"
        " --allow-unauthenticated (server.allow_unauthenticated) to serve it open\n"
    )


served_apps: list[Any] = []
"""The apps the fake uvicorn of :func:`started` was given."""


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The addresses uvicorn was asked to serve (it is never started)."""
    hosts: list[str] = []

    class Server:  # uvicorn's own would configure logging onto the captured stderr
        def __init__(self, config: SimpleNamespace) -> None:
            self.config = config

        def run(self) -> None:
            hosts.append(self.config.host)
            served_apps.append(self.config.app)

    monkeypatch.setattr(
        "uvicorn.Config", lambda app, **options: SimpleNamespace(app=app, **options)
    )
    monkeypatch.setattr("uvicorn.Server", Server)
    return hosts


def test_serve_on_a_public_address_goes_on_once_a_key_exists_with_a_warning(
    run_cli: RunCli, started: list[str]
) -> None:
    run_cli("keys", "create", "--tenant", "acme")
    result = run_cli("serve", "--host", "0.0.0.0", "--port", "1")
    assert result.exit_code == 0, result.stderr
    assert started == ["0.0.0.0"]
    assert result.stderr == (
        "warning: serving on 0.0.0.0, which other machines can reach: every call needs an API"
        " key; keys travel in clear text unless TLS (a reverse proxy) is in front\n"
    )


def test_serve_on_a_public_address_without_keys_only_when_told_and_says_so(
    run_cli: RunCli, started: list[str], tmp_path: Path
) -> None:
    result = run_cli("serve", "--host", "0.0.0.0", "--port", "1", "--allow-unauthenticated")
    assert result.exit_code == 0, result.stderr
    warning = (
        "warning: serving on 0.0.0.0 WITHOUT API keys (server.allow_unauthenticated): anyone"
        " who can reach it calls models as tenant 'default' and uses the cache API\n"
    )
    assert result.stderr == warning
    config = tmp_path / "open.yaml"
    config.write_text("server: {allow_unauthenticated: true}\n", encoding="utf-8")
    from_file = run_cli("--config", str(config), "serve", "--host", "::", "--port", "1")
    assert from_file.exit_code == 0, from_file.stderr
    assert from_file.stderr == warning.replace("0.0.0.0", "::")
    assert started == ["0.0.0.0", "::"]


def test_serve_on_loopback_with_keys_says_nothing(run_cli: RunCli, started: list[str]) -> None:
    run_cli("keys", "create", "--tenant", "acme")
    result = run_cli("serve", "--port", "1")
    assert result.exit_code == 0, result.stderr
    assert started == ["127.0.0.1"] and result.stderr == ""


def test_serve_on_loopback_answers_its_own_names_on_its_own_port(
    run_cli: RunCli, started: list[str]
) -> None:
    served_apps.clear()
    assert run_cli("serve", "--port", "8123").exit_code == 0
    [app] = served_apps

    async def status(host: str) -> int:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://x") as client:
            return (await client.get("/health", headers={"Host": host})).status_code

    codes = [asyncio.run(status(host)) for host in ("localhost:8123", "localhost:8124", "evil")]
    assert codes == [200, 421, 421]


def test_keys_never_reach_the_ledger(run_cli: RunCli) -> None:
    key = run_cli("keys", "create", "--tenant", "acme", "--rpm", "1").stdout.strip()
    key_id = key.split("-")[1]

    async def two_calls() -> None:
        double = FunctionProvider(lambda r: "ok", name="anthropic", model="claude-sonnet-5-5")
        async with Runtime.open(load_settings(), providers=[double], api_keys=True) as runtime:
            found = await runtime.key_directory.authenticate(key)

            def ask(prompt: str) -> Request:
                request = Request.of(prompt, model="sonnet")
                return request.with_context(tenant=found.tenant, key_id=found.id)

            await runtime.engine.complete(ask("hi"))
            with pytest.raises(BudgetExceeded):  # another prompt: a cache hit is not counted
                await runtime.engine.complete(ask("hello"))

    asyncio.run(two_calls())
    exported = run_cli("ledger", "export")
    assert exported.exit_code == 0, exported.stderr
    events = [json.loads(line) for line in exported.stdout.splitlines()]
    decisions = [e for e in events if e["type"] == "governor_decision"]
    assert [(e["decision"], e["account"]) for e in decisions] == [
        ("allow", f"key:{key_id}:rpm"),
        ("reject", f"key:{key_id}:rpm"),
    ]
    assert key not in exported.stdout and key.rsplit("-", 1)[1] not in exported.stdout
