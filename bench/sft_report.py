"""The SFT benchmark's report: the engine's ratios to the TRL settings, the markdown table and one-line summaries."""

from __future__ import annotations

from typing import Any


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """engine / baseline and engine / the fastest TRL setting, for throughput and peak memory."""
    ok = {name: r for name, r in results.items() if "error" not in r}
    engine = ok.get("engine")
    if engine is None:
        return {}
    found: dict[str, Any] = {}
    trl = {name: r for name, r in ok.items() if name == "baseline" or name.startswith("trl_")}
    best = max(trl, key=lambda name: trl[name]["real_tokens_per_s"], default=None)
    for label, other in (("baseline", "baseline"), ("trl_best", "trl_best"), ("fastest_trl", best)):
        if other in ok:
            found[f"engine/{label}"] = {
                "against": other,
                "real_tokens_per_s": round(engine["real_tokens_per_s"] / ok[other]["real_tokens_per_s"], 2),
                "peak_mem": round(engine["peak_mem_bytes"] / ok[other]["peak_mem_bytes"], 2),
            }
    return found


def render(report: dict[str, Any]) -> str:
    gpu = report["meta"]["device"] == "cuda"
    lines = []
    for shape_name, shape in report["shapes"].items():
        head = ["setting", "real tok/s", "real fraction", "peak mem", "s/step", "examples/step", "final loss"]
        if gpu:
            head.append("MFU")
        lines += [f"### {shape_name}", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for name, r in shape["settings"].items():
            if "error" in r:
                lines.append(f"| {name} | failed: {r['error']} |" + " |" * (len(head) - 2))
                continue
            cells = [
                name,
                f"{r['real_tokens_per_s']:,.0f}",
                f"{r['real_token_fraction']:.3f}",
                format_bytes(r["peak_mem_bytes"]),
                f"{r['s_per_step']:.3f}",
                f"{r['examples_per_step']:.1f}",
                f"{r['final_loss']:.3f}" if r["final_loss"] is not None else "-",
            ]
            if gpu:
                cells.append(f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "-")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for label, ratio in shape["ratios"].items():
            lines.append(
                f"{label} ({ratio['against']}): real tok/s x{ratio['real_tokens_per_s']}, peak mem x{ratio['peak_mem']}"
            )
        devices = {r.get("device_name") for r in shape["settings"].values() if r.get("device_name")}
        if devices:
            lines.append(f"device: {', '.join(sorted(devices))}")
        lines.append("")
    return "\n".join(lines)


def brief(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"failed ({result['error']})"
    return (
        f"{result['real_tokens_per_s']:,.0f} real tok/s, {result['s_per_step']:.3f} s/step, "
        f"peak {format_bytes(result['peak_mem_bytes'])} ({result['process_wall_s']} s in all)"
    )


def format_bytes(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"
