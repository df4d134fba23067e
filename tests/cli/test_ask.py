"""``helios ask`` end to end: the real entry point, the engine, an adapter, the simulator."""

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest

from helios.sim import Fault, LatencyProfile, SimServer
from tests.cli.conftest import RunCli, default_sigint
from tests.cli.test_basics import assert_one_line_error


def write_config(tmp_path: Path, base_url: str, max_retries: int = 0) -> None:
    (tmp_path / "helios.yaml").write_text(
        "providers:\n"
        f"  openai: {{base_url: '{base_url}/v1', api_key: test, max_retries: {max_retries}}}\n"
        f"  anthropic: {{base_url: '{base_url}', api_key: test, max_retries: {max_retries}}}\n"
    )


@pytest.mark.parametrize("model", ["openai:gpt-5.4-mini", "sonnet"])
def test_streams_the_answer_and_prints_the_summary(
    run_cli: RunCli, sim: SimServer, tmp_path: Path, model: str
) -> None:
    write_config(tmp_path, sim.base_url)
    streamed = run_cli("ask", "Explain HNSW briefly", "--model", model)
    assert streamed.exit_code == 0, streamed.stderr
    assert streamed.stdout.strip()
    summary = streamed.stderr.strip()
    for field in ("TTFT", "total", "tokens in", "cost $"):
        assert field in summary, summary
    whole = run_cli("ask", "Explain HNSW briefly", "--model", model, "--no-stream")
    assert whole.exit_code == 0
    assert whole.stdout == streamed.stdout  # same text either way


def test_json_output(run_cli: RunCli, sim: SimServer, tmp_path: Path) -> None:
    write_config(tmp_path, sim.base_url)
    result = run_cli(
        "ask", "hello", "--model", "openai:gpt-5.4-mini", "--json", "--system", "Be brief"
    )
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["provider"] == "openai" and payload["model"] == "gpt-5.4-mini"
    assert payload["text"] and payload["usage"]["output_tokens"] > 0
    assert payload["cost_usd"] > 0
    assert payload["duration_s"] >= payload["ttft_s"] > 0


def test_provider_down_is_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    write_config(tmp_path, f"http://127.0.0.1:{closed}")
    result = run_cli("ask", "hi", "--model", "openai:gpt-5.4-mini")
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "openai:gpt-5.4-mini", "connection")


def test_missing_key_is_one_line(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    result = run_cli("ask", "hi", "--model", "sonnet")
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "ANTHROPIC_API_KEY", "providers.anthropic.api_key")


def test_rate_limit_is_retried_then_answered(
    run_cli: RunCli, sim: SimServer, tmp_path: Path
) -> None:
    write_config(tmp_path, sim.base_url, max_retries=2)
    sim.state.inject(Fault(kind="rate_limit", retry_after_s=0.05), times=1)
    result = run_cli("ask", "hi", "--model", "openai:gpt-5.4-mini")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip()


def test_sim_command_serves_the_protocols(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    helios = Path(sys.executable).with_name("helios")
    process = subprocess.Popen(
        [str(helios), "sim", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx2.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                    timeout=2,
                )
                break
            except httpx2.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"]
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_default_model_answers_offline(run_cli: RunCli) -> None:
    """README command (a): no keys, no services, the embedded model."""
    pytest.importorskip("llama_cpp", reason="needs helios[local]")
    result = run_cli("ask", "What is the capital of Japan?", "--max-tokens", "24")
    assert result.exit_code == 0, result.stderr
    assert "Tokyo" in result.stdout
    assert "llamacpp:smollm2-135m-instruct" in result.stderr


def test_ctrl_c_during_a_stream_exits_130_without_traceback(
    make_sim: Callable[..., SimServer], tmp_path: Path
) -> None:
    slow = make_sim(latency=LatencyProfile(tokens_per_s=4), reply_tokens=200)
    write_config(tmp_path, slow.base_url)
    helios = Path(sys.executable).with_name("helios")
    process = subprocess.Popen(
        [str(helios), "ask", "tell me a story", "--model", "openai:gpt-5.4-mini"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=default_sigint,
    )
    assert process.stdout is not None
    process.stdout.read(1)  # the answer has started streaming
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 130
    assert b"Traceback" not in stderr
    assert b"interrupted" in stderr


def test_ask_as_a_specialist_persona(run_cli: RunCli, sim: SimServer, tmp_path: Path) -> None:
    write_config(tmp_path, sim.base_url)
    result = run_cli(
        "ask",
        "A coffee brand for night owls",
        "--persona",
        "bard",
        "--model",
        "openai:gpt-5.4-mini",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    [request] = [r for r in sim.state.requests if r.protocol == "openai"][-1:]
    body = request.body
    assert body["messages"][0]["role"] == "system"  # the persona's system text
    assert "A coffee brand for night owls" in body["messages"][-1]["content"]


def test_ask_with_an_unknown_persona(run_cli: RunCli) -> None:
    result = run_cli("ask", "hi", "--persona", "nobody")
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "unknown persona 'nobody'", "bard", "zeitgeist")
