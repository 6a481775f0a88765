"""The optional judge of a task type's answers: a catalog model asked to grade an answer to its request from
0 to 1 (``kind: judge`` in the task type's checks). Its latency and cost are measured like any call's; its cost
is part of the execution's (and of the key's budget). A judge that fails or replies without a usable number
does not count against the answer: its check is reported with weight 0."""

from __future__ import annotations

import re
from dataclasses import dataclass

from omninode_bridge.modules.metrics.contract import CheckSpec, ModelSpec
from omninode_bridge.modules.metrics.services.quality import CheckResult
from omninode_bridge.modules.metrics.services.upstream import Call, UpstreamClient, UpstreamError

__all__ = ["JUDGE_INSTRUCTIONS", "Judged", "judge", "parse_grade"]

JUDGE_INSTRUCTIONS = (
    "You grade answers. Given a request and an answer to it, rate how well the answer fulfils the request, "
    "from 0 (useless or wrong) to 1 (complete and correct). Reply with the number only, e.g. 0.7."
)
#: Characters of the request and of the answer shown to the judge (a judge has a context window too).
_SHOWN = 6000
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?:\s*/\s*(\d+(?:\.\d+)?))?")


@dataclass(frozen=True, slots=True)
class Judged:
    """One judge call: its check result, and what it cost."""

    result: CheckResult
    model: str
    latency_ms: float
    cost_usd: float
    input_tokens: int
    output_tokens: int


def parse_grade(reply: str) -> float | None:
    """The grade in a judge's reply: the first number, as a share when written ``a/b`` (``8/10``); None when
    there is none or it is outside 0..1."""
    found = _NUMBER.search(reply)
    if found is None:
        return None
    value = float(found.group(1))
    if found.group(2) is not None:
        denominator = float(found.group(2))
        value = value / denominator if denominator > 0 else -1.0
    return round(value, 4) if 0.0 <= value <= 1.0 else None


async def judge(client: UpstreamClient, check: CheckSpec, spec: ModelSpec, call: Call, answer: str) -> Judged:
    """Ask ``spec`` to grade ``answer`` to ``call``'s request."""
    request = call.prompt_text()[:_SHOWN]
    messages = [
        {"role": "system", "content": JUDGE_INSTRUCTIONS},
        {"role": "user", "content": f"Request:\n{request}\n\nAnswer:\n{answer[:_SHOWN]}\n\nGrade (0 to 1):"},
    ]
    try:
        done = await client.complete(spec, Call(messages, temperature=0.0, max_tokens=16))
    except UpstreamError as exc:
        failed = CheckResult(check.name, False, f"the judge failed ({exc.error_class}); not counted")
        return Judged(failed, spec.id, exc.latency_ms, 0.0, 0, 0)
    cost = spec.price.cost(done.input_tokens, done.output_tokens)
    grade = parse_grade(done.text)
    if grade is None:
        result = CheckResult(check.name, False, "the judge's reply holds no grade from 0 to 1; not counted")
    else:
        result = CheckResult(check.name, grade >= 0.5, f"graded {grade} by {spec.id}", score=grade)
    return Judged(result, spec.id, done.latency_ms, cost, done.input_tokens, done.output_tokens)
