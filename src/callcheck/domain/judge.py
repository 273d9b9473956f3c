"""The `judge` assertion: an LLM over an OpenAI-compatible chat-completions API decides a plain criterion.

Pure: the request (`judge_request`) and the reading of the reply (`parse_judge_reply`). The one round trip is
`callcheck.providers.llm.OpenAICompatibleJudge`, which never raises and never guesses: a network error, an error
status or an unreadable answer is `not_evaluated` with the reason, never a pass.
"""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

from callcheck.domain.assertions import CallEvidence, JudgeAnswer

# The transcript is cut beyond this many characters: the judge must stay cheap; calls this long are rare.
MAX_TRANSCRIPT_CHARS = 30_000
REASON_CHARS = 500

SYSTEM_PROMPT = (
    "You check phone calls made by an AI caller to a business. You are given a criterion and the call's "
    "transcript. Decide strictly from the transcript whether the criterion holds; when the transcript "
    "does not show it, it does not hold. Answer with one JSON object and nothing else: "
    '{"verdict": "pass" or "fail", "reason": "one sentence citing the turn that decided it"}.'
)


def transcript_text(evidence: CallEvidence, limit: int = MAX_TRANSCRIPT_CHARS) -> str:
    """The transcript as numbered lines `[3] 12.4s business: text`, with keypad presses and a length cap."""
    lines = []
    for index, turn in enumerate(evidence.turns):
        said = "(silence)" if turn.silence else " ".join((turn.text or "").split())
        tools = [
            f"(pressed {call.keys or ''}{'' if call.status == 'succeeded' else ', ' + call.status})"
            if call.kind == "keypad"
            else f"({call.name})"
            for call in turn.tool_calls
        ]
        body = " ".join(part for part in [said, *tools] if part)
        if body:
            lines.append(f"[{index}] {turn.time_in_call_secs:g}s {turn.speaker}: {body}")
    text = "\n".join(lines)
    if len(text) > limit:
        text = text[:limit] + "\n[transcript cut]"
    return text


def judge_request(model: str, criterion: str, evidence: CallEvidence) -> dict[str, Any]:
    """The chat-completions request body asking `model` whether `criterion` holds for the call."""
    facts = f"Final call state: {evidence.state.value}."
    if evidence.facts.duration_secs is not None:
        facts += f" Duration: {evidence.facts.duration_secs:g}s."
    user = (
        f"Criterion: {criterion}\n\n{facts}\n\n"
        "Transcript (caller = the AI caller, business = the line under test):\n"
        f"{transcript_text(evidence)}"
    )
    return {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}],
        # Deterministic as far as the server allows: the same call should get the same verdict.
        "temperature": 0,
    }


class ChatCompletions(Protocol):
    """An OpenAI-compatible chat-completions endpoint (callcheck.providers.llm): what domain needs of an LLM."""

    model: str

    async def complete(self, body: dict[str, Any]) -> tuple[Any, str | None]:
        """POST one request: (the JSON response, None), or (None, why it failed)."""
        ...


def short(text: str) -> str:
    """`text` on one line, cut to REASON_CHARS: a reason or an error body as a person reads it."""
    flat = " ".join(text.split())
    return flat if len(flat) <= REASON_CHARS else flat[: REASON_CHARS - 1] + "…"


def json_in_text(content: str) -> Any:
    """The JSON object in a model's answer, tolerating code fences and prose around it."""
    try:
        return json.loads(content)
    except json.JSONDecodeError:
        pass
    match = re.search(r"\{.*\}", content, re.DOTALL)
    if match:
        try:
            return json.loads(match.group(0))
        except json.JSONDecodeError:
            return None
    return None


def parse_judge_reply(body: Any) -> JudgeAnswer:
    """The judge's answer from a chat-completions response body; anything unreadable is not_evaluated."""
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return JudgeAnswer(status="not_evaluated", reason="the judge's response has no choices[0].message.content")
    if not isinstance(content, str) or not content.strip():
        return JudgeAnswer(status="not_evaluated", reason="the judge's answer is empty")
    answer = json_in_text(content)
    if not isinstance(answer, dict):
        return JudgeAnswer(status="not_evaluated", reason=f"the judge did not answer in JSON: {short(content)}")
    verdict = str(answer.get("verdict", "")).strip().lower()
    reason = answer.get("reason")
    reason_text = short(reason) if isinstance(reason, str) and reason.strip() else "no reason given"
    if verdict in ("pass", "passed"):
        return JudgeAnswer(status="pass", reason=reason_text)
    if verdict in ("fail", "failed"):
        return JudgeAnswer(status="fail", reason=reason_text)
    return JudgeAnswer(
        status="not_evaluated", reason=f"the judge's verdict is {answer.get('verdict')!r}, not pass or fail"
    )
