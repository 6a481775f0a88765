"""``omninode-bridge models list|stats`` and ``omninode-bridge execute``: the metrics module through its API.

Only typer is imported at module level so ``--help`` stays immediate; httpx and rich load inside the commands.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import httpx

__all__ = ["execute_command", "models_app", "result_lines"]

models_app = typer.Typer(help="The model catalog of the metrics module, with live status and statistics.",
                         no_args_is_help=True)  # fmt: skip

_Url = Annotated[str | None, typer.Option(envvar="OMNINODE_URL", help="API base URL.")]
_Key = Annotated[str | None, typer.Option(envvar="OMNINODE_API_KEY", help="API key (scope metrics).")]


def _client(url: str | None, api_key: str | None, timeout: float = 30.0) -> httpx.Client:
    """An HTTP client of the API: URL and key from the options, else from the running ``dev`` stack."""
    import httpx

    from omninode_bridge.cli._api import api_target

    base, key = api_target(url, api_key)
    return httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=timeout)


def _fail(response: httpx.Response) -> typer.Exit:
    """Print a problem response's status and detail; the exit to raise."""
    from omninode_bridge.cli import err_console

    try:
        detail = response.json().get("detail") or response.text
    except ValueError:
        detail = response.text
    err_console().print(f"error: {response.status_code} {detail}", markup=False, highlight=False)
    return typer.Exit(1)


@models_app.command("list")
def models_list(url: _Url = None, api_key: _Key = None) -> None:
    """Every catalog model: task types, prices, and now: cooldown, calls in flight, recent success rate."""
    from rich.console import Console
    from rich.table import Table

    with _client(url, api_key) as http:
        response = http.get("/models")
    if response.status_code != 200:
        raise _fail(response)
    items = response.json()["items"]
    if not items:
        typer.echo("The model catalog is empty: POST /execute answers 503 (see contracts/models.yaml).")
        return
    table = Table("id", "model", "task types", "$/M in", "$/M out", "status", "in flight", "recent success")
    for m in items:
        status = f"cooling {m['cooling_down_seconds']:.0f} s" if m["cooling_down_seconds"] else "ready"
        rate = m.get("recent_success_rate")
        table.add_row(
            m["id"], m["model"], ",".join(m["task_types"]), f"{m['price_input_per_million']:g}",
            f"{m['price_output_per_million']:g}", status, str(m["in_flight"]),
            f"{rate:.0%} of {m['recent_attempts']}" if rate is not None else "-",
        )  # fmt: skip
    Console().print(table)


@models_app.command("stats")
def models_stats(
    model_id: Annotated[str, typer.Argument(help="The model's id in the catalog.")],
    task_type: Annotated[str | None, typer.Option(help="Only this task type.")] = None,
    since: Annotated[str | None, typer.Option(help="Window start (ISO 8601 with a time zone).")] = None,
    url: _Url = None,
    api_key: _Key = None,
) -> None:
    """A model's statistics per task type: samples, success rate, latency, cost and quality."""
    from rich.console import Console
    from rich.table import Table

    params = {k: v for k, v in {"task_type": task_type, "since": since}.items() if v is not None}
    with _client(url, api_key) as http:
        response = http.get(f"/models/{model_id}/stats", params=params)
    if response.status_code != 200:
        raise _fail(response)
    report = response.json()
    table = Table("task type", "samples", "success", "latency ms", "p95 ms", "cost $/call", "quality", "n")
    for s in report["task_types"]:
        p95, cost = s.get("latency_p95_estimate_ms"), s.get("cost_mean_usd")
        table.add_row(
            s["task_type"], str(s["samples"]), f"{s['success_rate']:.0%}", f"{s['latency_ewma_ms']:.1f}",
            f"{p95:.1f}" if p95 is not None else "-", f"{cost:.6f}" if cost is not None else "-",
            f"{s['quality_mean']:.3f}", str(s["quality_samples"]),
        )  # fmt: skip
    Console().print(f"Model {report['model']}")
    Console().print(table)


def result_lines(result: dict[str, Any]) -> list[str]:
    """What ``execute`` prints after the answer: model, latency, tokens, cost, quality, attempts."""
    tokens = result["tokens"]
    ttft = f", first token {result['ttft_ms']:.1f} ms" if result.get("ttft_ms") is not None else ""
    lines = [
        f"model     {result['model']}",
        f"latency   {result['latency_ms']:.1f} ms{ttft}",
        f"tokens    {tokens['input']} in, {tokens['output']} out{' (estimated)' if tokens.get('estimated') else ''}",
        f"cost      ${result['cost_usd']:.6f}",
        f"quality   {result['quality']['score']:.2f} "
        + " ".join(f"{c['name']}:{'ok' if c['passed'] else 'FAILED'}" for c in result["quality"]["checks"]),
    ]
    if len(result["attempts"]) > 1:
        lines.append("attempts  " + ", ".join(f"{a['model']} {a['outcome']}" for a in result["attempts"]))
    lines.append(f"execution {result['execution_id']}")
    return lines


def execute_command(
    prompt: Annotated[str, typer.Argument(help="The prompt (one user message).")],
    task_type: Annotated[str, typer.Option("--task-type", "-t", help="The task type, e.g. chat, analysis.")],
    strategy: Annotated[str, typer.Option(help="quality, cost, latency or balanced.")] = "balanced",
    model: Annotated[str | None, typer.Option(help="A catalog model id (bypasses routing).")] = None,
    max_tokens: Annotated[int | None, typer.Option(min=1, help="Upper bound of the answer's tokens.")] = None,
    url: _Url = None,
    api_key: _Key = None,
) -> None:
    """Run an AI task through POST /execute, streaming the answer.

    The answer goes to stdout as it arrives; then the model, latency, tokens, cost and quality go to stderr.
    Exit code 1 if no model answered.
    """
    from omninode_bridge.cli import err_console

    body: dict[str, Any] = {"task_type": task_type, "prompt": prompt, "strategy": strategy, "stream": True}
    if model is not None:
        body["model"] = model
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    with _client(url, api_key, timeout=600.0) as http, http.stream("POST", "/execute", json=body) as response:
        if response.status_code != 200:
            response.read()
            raise _fail(response)
        event = ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data = json.loads(line.removeprefix("data:").strip())
                if event == "delta":
                    typer.echo(data["text"], nl=False)
                elif event == "result":
                    result = data
                elif event == "error":
                    error = data
    typer.echo("")
    console = err_console()
    if result is None:
        detail = error.get("detail") if error else "the stream ended without a result"
        console.print(f"error: {detail}", markup=False, highlight=False)
        raise typer.Exit(1)
    for line in result_lines(result):
        console.print(line, markup=False, highlight=False)
