"""`make demo`: the whole service on this machine, end to end, over HTTP.

Starts the API and a worker (`api.serve`: Postgres and Redis when they answer on their default ports, otherwise
the embedded SQLite database and broker), builds the tiny model, creates an API token, submits an SFT job as YAML,
follows its events live (Server-Sent Events), then merges the adapter and runs a generate job on the merged model,
both chained by job id, and prints what came out.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "demo-output"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    from api.serve import resolve_service_env
    from finetuning.tiny import cached_tiny_model, tiny_chat_records, write_jsonl

    model = cached_tiny_model(ROOT / ".cache" / "tiny-models")
    records = tiny_chat_records(48)
    data = write_jsonl(records, OUT / "data" / "colors.jsonl")
    # three of the training questions, with the answers they were trained on, for the generate job
    questions = write_jsonl(
        [
            {"id": r["id"], "prompt_messages": r["messages"][:1], "response": r["messages"][1]["content"]}
            for r in records[:3]
        ],
        OUT / "data" / "questions.jsonl",
    )
    env = {
        **os.environ,
        "FINETUNING_ARTIFACT_ROOT": str(OUT / "artifacts"),
        "FINETUNING_ALLOWED_ROOTS": json.dumps([str(model.parent), str(data.parent)]),
        "FINETUNING_DATABASE_URL": os.environ.get("FINETUNING_DATABASE_URL", f"sqlite:///{OUT / 'service.db'}"),
        "FINETUNING_BROKER_URL": os.environ.get("FINETUNING_BROKER_URL", f"sqla+sqlite:///{OUT / 'broker.db'}"),
        # a queue of this run's own: a worker left from another checkout must not take its jobs
        "FINETUNING_DEFAULT_QUEUE": f"demo-{os.getpid()}",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    # Postgres/Redis on their default ports win over the embedded defaults, as in `make serve`
    detected = resolve_service_env({}, database_name="finetuning_demo")
    env.update({k: v for k, v in detected.items() if k not in os.environ})
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    OUT.mkdir(exist_ok=True)
    server_log = (OUT / "server.log").open("wb")
    print(f"starting the API and a worker on {base} (log: {OUT / 'server.log'})", flush=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "api.serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=server_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_ready(base, server)
        token = subprocess.run(
            [sys.executable, "-m", "api.admin", "token", "create", "--project", "demo", "--name", "make demo"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            return run_demo(client, model, data, questions)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited; see {OUT / 'server.log'}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit(f"the server did not become ready; see {OUT / 'server.log'}")


def sft_config(model: Path, data: Path) -> dict[str, Any]:
    return {
        "data_conf": {
            "chat_template_name": "chat-ml",
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(data)}]},
            "validation_data": {"type": "AUTO_SPLIT", "ratio": 0.125},
        },
        "training_args": {
            "max_steps": 150,
            "learning_rate": 1e-2,
            "logging_steps": 10,
            "save_steps": 75,
            "eval_strategy": "steps",
            "eval_steps": 75,
            "use_cpu": True,
            "report_to": [],
        },
        "batchsize_conf": {"total_train_batch_size": 8, "max_per_device_train_batch_size": 8},
        "peft_conf": {"peft_type": "LORA", "peft_kwargs": {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"}},
        "run_conf": {"model": str(model)},
        "sft_args": {"max_seq_length": 128, "train_on_completions_only": True},
    }


def submit(client: httpx.Client, kind: str, body: Any, *, yaml_body: bool = False, name: str) -> dict[str, Any]:
    if yaml_body:
        response = client.post(
            f"/v1/jobs/{kind}",
            params={"name": name, "label": "source=make-demo"},
            content=yaml.safe_dump(body),
            headers={"Content-Type": "application/yaml"},
        )
    else:
        response = client.post(f"/v1/jobs/{kind}", params={"name": name, "label": "source=make-demo"}, json=body)
    if response.status_code != 201:
        sys.exit(f"{kind} submission failed: {response.status_code} {response.text}")
    job: dict[str, Any] = response.json()
    print(f"\n{kind} job {job['id']} queued", flush=True)
    return job


def follow(client: httpx.Client, job_id: str) -> dict[str, Any]:
    """Print the job's events as they arrive (SSE) until it ends; return the finished job."""
    with client.stream("GET", f"/v1/jobs/{job_id}/events/stream", timeout=None) as stream:
        event_type = ""
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event_type = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                show(event_type, json.loads(line.split(":", 1)[1]))
    job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
    print(f"  -> {job['status']}" + (f": {job['error']['message']}" if job.get("error") else ""), flush=True)
    return job


def show(event_type: str, data: dict[str, Any]) -> None:
    if event_type == "phase":
        print(f"  phase {data['phase']}", flush=True)
    elif event_type == "metrics" and data.get("loss") is not None:
        print(f"  step {data['step']:>4}/{data['total_steps']}  loss {data['loss']:.3f}", flush=True)
    elif event_type == "eval":
        print(f"  eval at step {data['step']}: loss {data['metrics'].get('loss', float('nan')):.3f}", flush=True)
    elif event_type == "job":
        print(f"  job {data.get('status')}", flush=True)


def run_demo(client: httpx.Client, model: Path, data: Path, questions: Path) -> int:
    sft = follow(client, submit(client, "sft", sft_config(model, data), yaml_body=True, name="colors-sft")["id"])
    if sft["status"] != "succeeded":
        return 1
    losses = client.get(f"/v1/jobs/{sft['id']}/metrics").json()["train"]["loss"]
    print(
        f"  loss {losses[0]['value']:.3f} at step {losses[0]['step']} -> {losses[-1]['value']:.3f} "
        f"at step {losses[-1]['step']}"
    )
    merge = submit(
        client,
        "merge",
        {"base_model": f"job:{sft['id']}/new_basemodel", "adapter": f"job:{sft['id']}"},
        name="colors-merge",
    )
    merge = follow(client, merge["id"])
    if merge["status"] != "succeeded":
        return 1
    generate_body = {
        "model_conf": {"model": f"job:{merge['id']}"},
        "prompt_conf": {"type": "eval-data", "data": {"path": str(questions)}},
        "hf_gen_params": {"do_sample": False, "max_new_tokens": 6},
    }
    generate = follow(client, submit(client, "generate", generate_body, name="colors-generate")["id"])
    if generate["status"] != "succeeded":
        return 1
    output = client.get(f"/v1/jobs/{generate['id']}/output").json()
    print("\nthe finetuned, merged model answers:")
    for item in output:
        question = item["prompt"].split("user\n", 1)[-1].split("<|im_end|>", 1)[0]
        print(f"  {question:<28} -> {item['answer'].strip()!r:<10} (trained on {item['correct_answers'][0]!r})")
    print(f"\njobs: {sft['id']} (sft) -> {merge['id']} (merge) -> {generate['id']} (generate)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
