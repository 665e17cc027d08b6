"""The ``ftjob`` command-line client end to end: uvicorn serving the API in a thread, Postgres, Redis, a real Celery
worker and the tiny model; ``ftjob.cli.main`` runs in-process with the URL and token from the environment. Also the
pieces that need no service: the SSE reconnect, the terminal progress line, usage errors and the import footprint."""

from __future__ import annotations

import io
import json
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ftjob.cli import main
from ftjob.client import Client, Event
from ftjob.render import LineRenderer, TtyRenderer
from jobcore.settings import ServiceSettings

slow = pytest.mark.slow


# -- the service


@pytest.fixture(scope="module")
def token(settings: ServiceSettings) -> str:
    from api.admin import create_token
    from jobcore.db import session_scope

    with session_scope(settings.database_url) as session:
        _, value = create_token(session, f"ftjob-{secrets.token_hex(3)}", "ftjob tests")
    return value


@pytest.fixture
def service(base_url: str, token: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    """The environment ``ftjob`` reads, and a plain HTTP client of the same project for checks and side actions."""
    monkeypatch.setenv("FINETUNING_URL", base_url)
    monkeypatch.setenv("FINETUNING_TOKEN", token)
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def colors(data_dir: Path) -> Path:
    from finetuning.tiny import tiny_chat_records, write_jsonl

    return write_jsonl(tiny_chat_records(32), data_dir / "ftjob-colors.jsonl")


def sft_config(model: Path, data: Path, **training_args: Any) -> dict[str, Any]:
    return {
        "data_conf": {
            "chat_template_name": "chat-ml",
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(data)}]},
            "validation_data": {"type": "NONE"},
        },
        "training_args": {
            "max_steps": 10,
            "learning_rate": 1e-2,
            "logging_steps": 2,
            "save_strategy": "no",
            "use_cpu": True,
            "report_to": [],
            **training_args,
        },
        "batchsize_conf": {"total_train_batch_size": 8, "max_per_device_train_batch_size": 8},
        "peft_conf": {"peft_type": "LORA", "peft_kwargs": {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"}},
        "run_conf": {"model": str(model)},
        "sft_args": {"max_seq_length": 128, "train_on_completions_only": True},
    }


def write_yaml(path: Path, config: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


# -- against the service


@slow
def test_submit_follow_then_list_show_logs_events(
    service: httpx.Client,
    tiny_model_dir: Path,
    colors: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = secrets.token_hex(4)
    config = write_yaml(tmp_path / "sft.yaml", sft_config(tiny_model_dir, colors))
    code = main(["submit", "sft", config, "--name", "cli-first", "--label", f"run={run}", "--follow"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "\r" not in out  # not a terminal: one line per update
    lines = out.splitlines()
    assert lines[0].startswith("submitted sft job ")
    job_id = lines[0].split()[3]
    assert "phase: training" in lines
    steps = [line for line in lines if line.startswith("training  step ")]
    assert len(steps) == 5  # logging_steps 2 of 10
    assert "step 10/10 (100%)" in steps[-1]
    assert all(" loss " in line for line in steps)
    assert "eta " in steps[0]
    final = lines[-1]
    assert final.startswith(f"job {job_id} succeeded in ")
    assert "final loss " in final
    assert "artifacts: " in final
    assert "new_basemodel=" in final

    assert main(["list", "--label", f"run={run}", "--json"]) == 0
    page = json.loads(capsys.readouterr().out)
    assert [job["id"] for job in page["data"]] == [job_id]
    assert page["next"] is None
    assert main(["list", "--kind", "sft", "--status", "succeeded", "--limit", "1", "--all"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["ID", "KIND", "STATUS", "PHASE", "PROGRESS", "CREATED", "NAME", "LABELS"]
    assert any(row.startswith(job_id) and "cli-first" in row and f"run={run}" in row for row in table[1:])

    assert main(["show", job_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "succeeded"
    assert shown["name"] == "cli-first"
    assert shown["labels"] == {"run": run}
    assert main(["show", job_id]) == 0
    details = capsys.readouterr().out
    assert "id:" in details
    assert "status:" in details
    assert "succeeded" in details
    assert "artifact new_basemodel" in details

    assert main(["events", job_id, "--json"]) == 0
    events = json.loads(capsys.readouterr().out)
    assert events[-1]["type"] == "job"
    assert events[-1]["data"]["status"] == "succeeded"
    assert sum(1 for event in events if event["type"] == "metrics" and event["data"]["loss"] is not None) == 5
    assert main(["logs", job_id]) == 0
    assert "INFO finetuning" in capsys.readouterr().out
    # following a finished job replays it and ends at once; --json gives one event per line
    assert main(["follow", job_id, "--json"]) == 0
    replayed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [event["id"] for event in replayed] == [event["id"] for event in events]
    assert main(["output", job_id]) == 2  # not a generate job
    assert "no_output" in capsys.readouterr().err
    # cancelling a finished job is refused by the service (409): bad input, exit 2
    assert main(["cancel", job_id]) == 2
    assert "job_finished" in capsys.readouterr().err
    assert main(["cancel", job_id, "--checkpoint"]) == 2
    assert "job_finished" in capsys.readouterr().err
    # only a cancelled or failed training job can be resumed
    assert main(["resume", job_id]) == 2
    err = capsys.readouterr().err
    assert "not_resumable" in err
    assert "succeeded" in err


@slow
def test_a_bad_key_is_refused_with_its_field_path(
    service: httpx.Client, tiny_model_dir: Path, colors: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = sft_config(tiny_model_dir, colors)
    config["training_args"]["learnin_rate"] = config["training_args"].pop("learning_rate")
    code = main(["submit", "sft", write_yaml(tmp_path / "typo.yaml", config)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert "[invalid_config, HTTP 422]" in err
    assert "  training_args.learnin_rate: " in err


@slow
def test_a_job_that_fails_in_the_engine_exits_1(
    service: httpx.Client, tiny_model_dir: Path, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from finetuning.tiny import tiny_chat_records

    lines = [json.dumps(record) for record in tiny_chat_records(8)]
    lines[5] = '{"messages": [{"role": "user", "content": "unfinished'  # not JSON: the engine rejects the file
    data = data_dir / "ftjob-bad-record.jsonl"
    data.write_text("\n".join(lines) + "\n")
    config = write_yaml(tmp_path / "bad-data.yaml", sft_config(tiny_model_dir, data))
    code = main(["submit", "sft", config, "--wait"])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert " failed in " in out.splitlines()[-1]
    assert "failed: invalid_data: " in err
    assert "line 6" in err
    assert "ftjob logs " in err


@slow
def test_cancelling_from_elsewhere_ends_a_waiting_submit_with_exit_3(
    service: httpx.Client, tiny_model_dir: Path, colors: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = secrets.token_hex(4)
    config = write_yaml(tmp_path / "long.yaml", sft_config(tiny_model_dir, colors, max_steps=100_000, logging_steps=5))
    problems: list[str] = []

    def cancel_once_training() -> None:
        deadline = time.monotonic() + 90
        try:
            while time.monotonic() < deadline:
                jobs = service.get("/v1/jobs", params={"label": f"run={run}"}).json()["data"]
                if jobs and jobs[0]["phase"] == "training" and (jobs[0]["progress"].get("step") or 0) >= 5:
                    answer = service.post(f"/v1/jobs/{jobs[0]['id']}/cancel")
                    if answer.status_code != 200:
                        problems.append(answer.text)
                    return
                time.sleep(0.2)
            problems.append("the job never trained")
        except Exception as exc:  # reported by the test below
            problems.append(repr(exc))

    canceller = threading.Thread(target=cancel_once_training, daemon=True)
    canceller.start()
    code = main(["submit", "sft", config, "--label", f"run={run}", "--wait"])
    canceller.join(timeout=10)
    out, err = capsys.readouterr()
    assert not problems, problems
    assert code == 3, out + err
    assert " cancelled in " in out.splitlines()[-1]


@slow
def test_generate_then_output_as_json_and_yaml(
    service: httpx.Client, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {
        "model_conf": {"model": str(tiny_model_dir)},
        "prompt_conf": {"type": "open-input", "input": "What color is the sky?", "num_samples": 2},
        "hf_gen_params": {"do_sample": False, "max_new_tokens": 4},
    }
    code = main(["submit", "generate", write_yaml(tmp_path / "gen.yaml", config), "--wait", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    job_id = out.strip()  # --quiet: the id alone, for scripts
    assert len(job_id) == 36
    assert "\n" not in job_id

    assert main(["output", job_id]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert len(answers) == 2
    assert "answer" in answers[0]
    target = tmp_path / "answers.yaml"
    assert main(["output", job_id, "--yaml", "-o", str(target)]) == 0
    assert yaml.safe_load(target.read_text()) == answers


@slow
def test_service_errors_map_to_exit_codes(service: httpx.Client, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--token", "not-a-token", "list"]) == 4
    assert "HTTP 401" in capsys.readouterr().err
    assert main(["show", "00000000-0000-0000-0000-000000000000"]) == 2
    assert "[not_found, HTTP 404]" in capsys.readouterr().err
    assert main(["list", "--limit", "0"]) == 2  # the service's 422 on a query parameter
    assert "  limit: " in capsys.readouterr().err


# -- no service needed


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submit", "nonsense", "x.yaml"]) == 2
    assert main(["submit", "sft", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "merge.yaml").write_text("base_model: x\n")
    assert main(["submit", "merge", str(tmp_path / "merge.yaml"), "--processes", "2"]) == 2
    assert main(["submit", "sft", str(tmp_path / "merge.yaml"), "--label", "novalue"]) == 2
    assert main(["--help"]) == 0
    assert "exit codes:" in capsys.readouterr().out


def test_an_unreachable_service_exits_4(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["--url", f"http://127.0.0.1:{port}", "list"]) == 4
    assert "cannot reach" in capsys.readouterr().err


class _Dropping(httpx.SyncByteStream):
    """A response body that sends ``chunks`` and then loses the connection."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        raise httpx.ReadError("connection reset by peer")


def _sse(event_id: int, kind: str, data: dict[str, Any]) -> bytes:
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def test_a_dropped_stream_resumes_with_last_event_id() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Last-Event-ID"))
        headers = {"Content-Type": "text/event-stream"}
        if len(seen) == 1:
            chunks = [b"retry: 3000\n\n", _sse(7, "job", {"status": "running"}), b": keep-alive\n\n"]
            chunks.append(_sse(8, "progress", {"step": 1, "total_steps": 2, "percent": 50.0, "eta_s": 1.0}))
            return httpx.Response(200, headers=headers, stream=_Dropping(chunks))
        if len(seen) == 2:
            return httpx.Response(503, json={"error": {"code": "unavailable", "message": "restarting"}})
        chunks = [_sse(9, "metrics", {"step": 2, "loss": 0.5}), _sse(10, "job", {"status": "succeeded"})]
        return httpx.Response(200, headers=headers, content=b"".join(chunks))

    reconnects: list[str] = []
    with Client("http://service", "t", transport=httpx.MockTransport(handler)) as client:
        stream = client.stream_events("job-1", on_reconnect=lambda n, why: reconnects.append(why), sleep=lambda s: None)
        events = list(stream)
    assert [event.id for event in events] == [7, 8, 9, 10]
    assert seen == [None, "8", "8"]
    assert "ReadError" in reconnects[0]
    assert "503" in reconnects[1]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _events() -> list[Event]:
    return [
        Event(1, "job", {"status": "running", "attempt": 1}),
        Event(2, "phase", {"phase": "training"}),
        Event(3, "metrics", {"step": 5, "total_steps": 10, "loss": 1.25, "learning_rate": 0.01, "epoch": 0.5}),
        Event(4, "progress", {"step": 5, "total_steps": 10, "percent": 50.0, "eta_s": 12.0}),
        Event(5, "log", {"stream": "stderr", "line": "an output line"}),
        Event(6, "log", {"level": "warning", "message": "3 records were too long"}),
        Event(7, "metrics", {"step": 10, "total_steps": 10, "loss": 0.5}),
        Event(8, "progress", {"step": 10, "total_steps": 10, "percent": 100.0, "eta_s": 0.0}),
        Event(9, "job", {"status": "succeeded"}),
    ]


def test_a_terminal_gets_one_rewritten_line_and_a_log_gets_lines() -> None:
    terminal = _Terminal()
    tty = TtyRenderer(terminal)
    for event in _events():
        tty.event(event)
    tty.finish()
    screen = terminal.getvalue()
    assert "\r\x1b[K[##########..........] training  step 5/10 (50%)  loss 1.25" in screen
    assert "eta 12s" in screen
    assert "[warning] 3 records were too long\n" in screen
    assert "an output line" not in screen  # output lines only with --logs
    assert screen.endswith("\r\x1b[K")  # clean for the summary

    log = io.StringIO()
    plain = LineRenderer(log, logs=True)
    for event in _events():
        plain.event(event)
    assert "\r" not in log.getvalue()
    assert log.getvalue().splitlines() == [
        "status: running (attempt 1)",
        "phase: training",
        "training  step 5/10 (50%)  loss 1.25  lr 1.00e-02  epoch 0.50  eta 12s",
        "| an output line",
        "[warning] 3 records were too long",
        "training  step 10/10 (100%)  loss 0.5  lr 1.00e-02  epoch 0.50",
    ]


def test_the_client_imports_neither_torch_nor_the_service() -> None:
    code = (
        "import sys, ftjob.cli; print(sorted(m for m in ('torch', 'api', 'finetuning', 'fastapi') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2]
    )
    assert result.stdout.strip() == "[]"
