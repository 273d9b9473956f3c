"""An OpenAI-compatible chat-completions API: the LLM behind `judge` assertions and `callcheck suggest`.

The one I/O of LLM use, over an injectable httpx client. What to ask and how to read the answer are pure functions
in domain (`domain.judge`, `domain.suggest`). `complete` never raises: an unreachable server, an error status or
a body that is not JSON is returned as the reason, for the caller to report as not evaluated (never a pass).
"""

from __future__ import annotations

from typing import Any

import httpx

from callcheck.config import Settings
from callcheck.domain.assertions import CallEvidence, JudgeAnswer
from callcheck.domain.judge import judge_request, parse_judge_reply, short


def completions_url(base_url: str) -> str:
    """`{base}/v1/chat/completions`, accepting a base that already ends in /v1 (as OpenAI's often is)."""
    base = base_url.rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return f"{base}/v1/chat/completions"


class OpenAICompatibleJudge:
    """A chat-completions client (`complete`, domain.judge.ChatCompletions) and the judge over it (`judge`)."""

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
            return None, f"answered HTTP {response.status_code}: {short(response.text)}"
        try:
            return response.json(), None
        except ValueError:
            return None, f"the response is not JSON: {short(response.text)}"

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
