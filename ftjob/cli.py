"""``ftjob``: submit, follow, list, show and cancel jobs of the finetuning service from a shell or a script."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ftjob import __version__
from ftjob.client import DEFAULT_URL, KINDS, Client, ConnectionFailed, ServiceError
from ftjob.render import (
    ENVELOPE,
    JsonRenderer,
    LineRenderer,
    LogRenderer,
    Renderer,
    TtyRenderer,
    error_lines,
    fmt_time,
    job_details,
    job_error_text,
    jobs_table,
    summary,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 3
EXIT_SERVICE = 4
EXIT_INTERRUPTED = 130

STATUSES = ("queued", "running", "cancel_requested", "succeeded", "failed", "cancelled")
STATUS_EXIT = {"succeeded": EXIT_OK, "failed": EXIT_FAILED, "cancelled": EXIT_CANCELLED}

EPILOG = """\
environment:
  FINETUNING_URL     the service (default http://127.0.0.1:8000); --url overrides it
  FINETUNING_TOKEN   the API token (`finetuning-admin token create`); --token overrides it

exit codes:
  0  the job succeeded (submit --wait, follow, wait), or the command did what it was asked
  1  the job failed (its error is printed on stderr)
  2  bad usage or input: unknown option, unreadable file, the service rejected the request
     (422 invalid config: each field path at fault is printed as `param: message`; 404 no such job;
     409 e.g. cancelling a finished job)
  3  the job was cancelled
  4  the service could not be reached, answered with a server error, or refused the token (401)
  130 interrupted (Ctrl-C); a followed job keeps running

examples:
  ftjob submit sft sft.yaml --name first-try --label team=nlp --follow
  JOB=$(ftjob submit sft sft.yaml --quiet) && ftjob wait "$JOB"
  ftjob list --status running
  ftjob output "$GENERATE_JOB" --yaml -o answers.yaml
"""


class UsageError(Exception):
    """Bad input found before asking the service (exit 2)."""


@dataclass
class Context:
    """What every command gets: the client and where to write."""

    client: Client
    out: TextIO
    err: TextIO

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def warn(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()


# -- following a job


def _renderer(args: argparse.Namespace, out: TextIO, *, follow: bool) -> Renderer:
    logs = bool(getattr(args, "logs", False))
    if getattr(args, "json", False):
        return JsonRenderer(out)
    if not follow or getattr(args, "quiet", False):
        return Renderer(out)
    if not getattr(args, "plain", False) and out.isatty() and os.environ.get("TERM") != "dumb":
        return TtyRenderer(out, logs=logs)
    return LineRenderer(out, logs=logs)


def _wait(ctx: Context, job_id: str, renderer: Renderer, *, quiet: bool = False, json_out: bool = False) -> int:
    """Follow the job's events until it ends, then print its summary; the exit code tells how it ended."""
    try:
        for event in ctx.client.stream_events(job_id, on_reconnect=renderer.reconnecting):
            renderer.event(event)
    except KeyboardInterrupt:
        renderer.finish()
        ctx.warn(f"stopped following job {job_id}; it keeps running (`ftjob cancel {job_id}` stops it)")
        return EXIT_INTERRUPTED
    finally:
        renderer.finish()
    job = ctx.client.get_job(job_id)
    status = str(job.get("status"))
    if not quiet and not json_out:
        ctx.print(summary(job, renderer.progress))
    if status == "failed":
        ctx.warn(f"job {job_id} failed: {job_error_text(job.get('error'))}")
        ctx.warn(f"  its log: ftjob logs {job_id}")
    return STATUS_EXIT.get(status, EXIT_SERVICE)


# -- commands


def _read_config(path: str) -> tuple[bytes, str]:
    if path == "-":
        return sys.stdin.buffer.read(), "application/yaml"
    try:
        body = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return body, "application/json" if path.endswith(".json") else "application/yaml"


def cmd_submit(args: argparse.Namespace, ctx: Context) -> int:
    """Submit a config file as a job."""
    for label in args.label:
        if "=" not in label:
            raise UsageError(f"--label {label!r}: expected key=value")
    if args.processes is not None and args.kind not in ("sft", "dpo", "grpo"):
        raise UsageError("--processes applies to training jobs (sft, dpo, grpo) only")
    body, content_type = _read_config(args.config)
    job, created = ctx.client.submit(
        args.kind,
        body,
        content_type=content_type,
        name=args.name,
        labels=args.label,
        queue=args.queue,
        processes=args.processes,
        idempotency_key=args.idempotency_key,
    )
    job_id = str(job["id"])
    if args.quiet:
        ctx.print(job_id)
    elif created:
        ctx.print(f"submitted {job['kind']} job {job_id} (queue {job.get('queue')})")
    else:
        ctx.print(f"job {job_id} was already submitted with this idempotency key (status {job.get('status')})")
    if not (args.wait or args.follow):
        return EXIT_OK
    return _wait(ctx, job_id, _renderer(args, ctx.out, follow=args.follow), quiet=args.quiet)


def cmd_follow(args: argparse.Namespace, ctx: Context) -> int:
    """Show a job's progress live until it ends."""
    return _wait(ctx, args.job_id, _renderer(args, ctx.out, follow=True), json_out=args.json)


def cmd_wait(args: argparse.Namespace, ctx: Context) -> int:
    """Wait for a job to end, silently."""
    return _wait(ctx, args.job_id, Renderer(ctx.out), quiet=args.quiet)


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    """List jobs, newest first."""
    for label in args.label:
        if "=" not in label:
            raise UsageError(f"--label {label!r}: expected key=value")
    jobs: list[dict[str, Any]] = []
    after = args.after
    while True:
        page = ctx.client.list_jobs(
            kind=args.kind, status=args.status, labels=args.label, limit=args.limit, after=after
        )
        jobs.extend(page["data"])
        after = page.get("next")
        if not args.all or after is None:
            break
    if args.json:
        ctx.print(json.dumps({"data": jobs, "next": after}, indent=2, ensure_ascii=False))
        return EXIT_OK
    ctx.print(jobs_table(jobs) if jobs else "no jobs")
    if after is not None:
        ctx.warn(f"more jobs: ftjob list --after {after} (or --all)")
    return EXIT_OK


def cmd_show(args: argparse.Namespace, ctx: Context) -> int:
    """Show one job."""
    job = ctx.client.get_job(args.job_id)
    ctx.print(json.dumps(job, indent=2, ensure_ascii=False) if args.json else job_details(job))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, ctx: Context) -> int:
    """Cancel a job."""
    job = ctx.client.cancel(args.job_id, checkpoint=args.checkpoint)
    ctx.print(f"job {job['id']}: {job['status']}")
    if not args.wait:
        return EXIT_OK
    return _wait(ctx, args.job_id, Renderer(ctx.out))


def cmd_resume(args: argparse.Namespace, ctx: Context) -> int:
    """Queue a cancelled or failed training job again, from its checkpoint."""
    job = ctx.client.resume(args.job_id)
    ctx.print(f"job {job['id']}: {job['status']}")
    if not args.wait:
        return EXIT_OK
    return _wait(ctx, args.job_id, Renderer(ctx.out))


def cmd_logs(args: argparse.Namespace, ctx: Context) -> int:
    """Print a job's log."""
    if args.follow:
        code = _wait(ctx, args.job_id, LogRenderer(ctx.out), quiet=True)
        return EXIT_INTERRUPTED if code == EXIT_INTERRUPTED else EXIT_OK
    ctx.out.write(ctx.client.logs(args.job_id))
    ctx.out.flush()
    return EXIT_OK


def cmd_output(args: argparse.Namespace, ctx: Context) -> int:
    """Fetch a generate job's answers."""
    body = ctx.client.output(args.job_id, yaml=args.yaml)
    if not args.yaml:
        body = (json.dumps(json.loads(body), indent=2, ensure_ascii=False) + "\n").encode()
    if args.output:
        try:
            Path(args.output).write_bytes(body)
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
        ctx.warn(f"wrote {args.output}")
    else:
        ctx.out.write(body.decode())
        ctx.out.flush()
    return EXIT_OK


def cmd_events(args: argparse.Namespace, ctx: Context) -> int:
    """Print every event a job has so far."""
    events = ctx.client.events(args.job_id)
    if args.json:
        ctx.print(json.dumps(events, indent=2, ensure_ascii=False))
        return EXIT_OK
    for event in events:
        fields = {k: v for k, v in (event.get("data") or {}).items() if k not in ENVELOPE}
        data = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
        ctx.print(f"{event['id']:>8}  {fmt_time(event.get('created_at'))}  {event['type']:<10}  {data}")
    return EXIT_OK


# -- the parser


def _connection_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # on the subcommands too, so `ftjob list --url ...` works; SUPPRESS keeps them from resetting the top ones
    default = None if top else argparse.SUPPRESS
    parser.add_argument("--url", default=default, help="the service URL (env FINETUNING_URL)")
    parser.add_argument("--token", default=default, help="the API token (env FINETUNING_TOKEN)")
    parser.add_argument(
        "--timeout", type=float, default=30.0 if top else argparse.SUPPRESS, help="HTTP timeout in seconds"
    )


def _follow_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--logs", action="store_true", help="also print the job's output lines")
    parser.add_argument("--plain", action="store_true", help="one line per update even on a terminal")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftjob",
        description="Command-line client of the finetuning job service.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ftjob {__version__}")
    _connection_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, func: Callable[[argparse.Namespace, Context], int], help_: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=help_, description=help_, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        _connection_options(sub, top=False)
        sub.set_defaults(func=func)
        return sub

    sub = command("submit", cmd_submit, "submit a config file (YAML, or JSON; - for stdin) as a job")
    sub.add_argument("kind", choices=KINDS, help="the job kind")
    sub.add_argument("config", help="the engine config file, as for the `finetuning` command")
    sub.add_argument("--name", help="a name for people")
    sub.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="a label (repeatable)")
    sub.add_argument("--queue", help="the worker queue (GPU pool); default: the service's")
    sub.add_argument("--processes", type=int, help="training processes (GPUs) for sft, dpo and grpo")
    sub.add_argument("--idempotency-key", help="a retry with the same key returns the first job, not a new one")
    sub.add_argument("--wait", action="store_true", help="wait for the job to end; the exit code tells how")
    sub.add_argument("--follow", action="store_true", help="wait and show progress live (implies --wait)")
    sub.add_argument("-q", "--quiet", action="store_true", help="print only the job id (and errors)")
    _follow_options(sub)

    sub = command("follow", cmd_follow, "show a job's progress live until it ends (step, loss, ETA)")
    sub.add_argument("job_id")
    sub.add_argument("--json", action="store_true", help="print each event as a JSON line instead")
    _follow_options(sub)

    sub = command("wait", cmd_wait, "wait silently for a job to end; the exit code tells how")
    sub.add_argument("job_id")
    sub.add_argument("-q", "--quiet", action="store_true", help="no summary line")

    sub = command("list", cmd_list, "list jobs, newest first")
    sub.add_argument("--kind", choices=KINDS)
    sub.add_argument("--status", choices=STATUSES)
    sub.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="a label (repeatable)")
    sub.add_argument("--limit", type=int, help="jobs per page (1-200; the service's default is 50)")
    sub.add_argument("--after", help="the cursor of the previous page")
    sub.add_argument("--all", action="store_true", help="every page")
    sub.add_argument("--json", action="store_true", help='print {"data": [jobs], "next": cursor}')

    sub = command("show", cmd_show, "show a job: status, progress, error, artifacts, metrics")
    sub.add_argument("job_id")
    sub.add_argument("--json", action="store_true", help="the job as the service returns it")

    sub = command("cancel", cmd_cancel, "cancel a queued or running job")
    sub.add_argument("job_id")
    sub.add_argument("--wait", action="store_true", help="wait until it has stopped; the exit code tells how")
    sub.add_argument(
        "--checkpoint", action="store_true", help="a training job saves a checkpoint first (`ftjob resume` continues)"
    )

    sub = command("resume", cmd_resume, "queue a cancelled or failed training job again, from its checkpoint")
    sub.add_argument("job_id")
    sub.add_argument("--wait", action="store_true", help="follow it to the end; the exit code tells how")

    sub = command("logs", cmd_logs, "print a job's log (its output lines and engine messages)")
    sub.add_argument("job_id")
    sub.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until the job ends")

    sub = command("output", cmd_output, "print a generate job's answers (JSON, or --yaml)")
    sub.add_argument("job_id")
    sub.add_argument("--yaml", action="store_true", help="the YAML file as the job wrote it")
    sub.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")

    sub = command("events", cmd_events, "print every event a job has so far")
    sub.add_argument("job_id")
    sub.add_argument("--json", action="store_true", help="a JSON array of {id, type, data, created_at}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (see ``ftjob --help``)."""
    out, err = sys.stdout, sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (argparse already said what)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    url = args.url or os.environ.get("FINETUNING_URL") or DEFAULT_URL
    token = args.token or os.environ.get("FINETUNING_TOKEN") or None
    try:
        with Client(url, token, timeout=args.timeout) as client:
            code: int = args.func(args, Context(client, out, err))
            return code
    except UsageError as exc:
        err.write(f"ftjob {args.command}: {exc}\n")
        return EXIT_USAGE
    except ServiceError as exc:
        err.write("\n".join(error_lines(exc)) + "\n")
        return EXIT_SERVICE if exc.status_code in (401, 403) or exc.status_code >= 500 else EXIT_USAGE
    except ConnectionFailed as exc:
        err.write(f"error: {exc}\n  is the service running? set FINETUNING_URL (or --url) to its address\n")
        return EXIT_SERVICE
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
