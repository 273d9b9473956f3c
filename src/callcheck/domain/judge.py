"""The `judge` assertion: an LLM over an OpenAI-compatible chat-completions API decides a plain criterion.

The request and the reading of the reply are pure functions (`judge_request`, `parse_judge_reply`); the one
I/O is `OpenAICompatibleJudge.judge`, over an injectable httpx client. It never raises and never guesses: a
network error, an error status or an unreadable answer is `not_evaluated` with the reason, never a pass.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from callcheck.config import Settings
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


def _short(text: str) -> str:
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
        return JudgeAnswer(status="not_evaluated", reason=f"the judge did not answer in JSON: {_short(content)}")
    verdict = str(answer.get("verdict", "")).strip().lower()
    reason = answer.get("reason")
    reason_text = _short(reason) if isinstance(reason, str) and reason.strip() else "no reason given"
    if verdict in ("pass", "passed"):
        return JudgeAnswer(status="pass", reason=reason_text)
    if verdict in ("fail", "failed"):
        return JudgeAnswer(status="fail", reason=reason_text)
    return JudgeAnswer(
        status="not_evaluated", reason=f"the judge's verdict is {answer.get('verdict')!r}, not pass or fail"
    )


def completions_url(base_url: str) -> str:
    """`{base}/v1/chat/completions`, accepting a base that already ends in /v1 (as OpenAI's often is)."""
    base = base_url.rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return f"{base}/v1/chat/completions"


class OpenAICompatibleJudge:
    """A judge over an OpenAI-compatible chat-completions API."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.url = completions_url(base_url)
        self.model = model
        self._api_key = api_key
        self._http = http
        self._timeout_s = timeout_s

    async def complete(self, body: dict[str, Any]) -> tuple[Any, str | None]:
        """POST a chat-completions request: (the JSON response, None), or (None, why it failed)."""
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        try:
            if self._http is not None:
                response = await self._http.post(self.url, json=body, headers=headers, timeout=self._timeout_s)
            else:
                async with httpx.AsyncClient(timeout=self._timeout_s) as client:
                    response = await client.post(self.url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            # str(exc) can be empty (e.g. some timeouts); the class name still says what happened.
            return None, f"could not be reached: {str(exc) or type(exc).__name__}"
        if response.status_code >= 400:
            return None, f"answered HTTP {response.status_code}: {_short(response.text)}"
        try:
            return response.json(), None
        except ValueError:
            return None, f"the response is not JSON: {_short(response.text)}"

    async def judge(self, criterion: str, evidence: CallEvidence) -> JudgeAnswer:
        """Ask the model whether `criterion` holds; not_evaluated with the reason when it cannot say."""
        payload, problem = await self.complete(judge_request(self.model, criterion, evidence))
        if problem is not None:
            return JudgeAnswer(status="not_evaluated", reason=f"the judge {problem}")
        return parse_judge_reply(payload)


def judge_from_settings(settings: Settings, http: httpx.AsyncClient | None = None) -> OpenAICompatibleJudge | None:
    """The configured judge, or None when CALLCHECK_JUDGE_BASE_URL or CALLCHECK_JUDGE_MODEL is unset."""
    base = (settings.judge_base_url or "").strip()
    model = (settings.judge_model or "").strip()
    if not base or not model:
        return None
    key = settings.judge_api_key.get_secret_value() if settings.judge_api_key else None
    return OpenAICompatibleJudge(base, model, key or None, http=http, timeout_s=settings.http_timeout_s)
