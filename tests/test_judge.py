"""The LLM judge against a tiny OpenAI-compatible server on loopback (real HTTP), and its defensive parsing."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from callcheck.config import Settings
from callcheck.domain.assertions import CallEvidence, JudgeExpectation, verdict_for
from callcheck.domain.evidence import Turn
from callcheck.domain.judge import judge_request, parse_judge_reply
from callcheck.domain.lifecycle import CallState
from callcheck.providers.llm import OpenAICompatibleJudge, completions_url, judge_from_settings
from tests.fake_openai import FakeOpenAI

EVIDENCE = CallEvidence(
    state=CallState.COMPLETED,
    call_id="call_1",
    turns=[
        Turn(speaker="caller", text="I'd like a pizza for pickup.", time_in_call_secs=2),
        Turn(speaker="business", text="Ready at 6pm, see you then.", time_in_call_secs=5),
    ],
)
CRITERION = "The business gave a pickup time."


def judge_settings(url: str, **extra: Any) -> Settings:
    return Settings(_env_file=None, judge_base_url=url, judge_model="test-model", **extra)  # type: ignore[call-arg]


async def test_pass_over_real_http(fake_openai: FakeOpenAI) -> None:
    fake_openai.answer('{"verdict": "pass", "reason": "Turn 1 says ready at 6pm."}')
    judge = judge_from_settings(judge_settings(fake_openai.url, judge_api_key="sk-test"))
    assert judge is not None
    verdict = await verdict_for(EVIDENCE, [JudgeExpectation(criterion=CRITERION)], judge)
    assert verdict.passed
    assert verdict.results[0].detail == "Turn 1 says ready at 6pm."
    path, headers, body = fake_openai.requests[0]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sk-test"
    assert body["model"] == "test-model"
    assert CRITERION in body["messages"][1]["content"]
    assert "[1] 5s business: Ready at 6pm, see you then." in body["messages"][1]["content"]


async def test_fail_with_fenced_json_and_an_injected_client(fake_openai: FakeOpenAI) -> None:
    fake_openai.answer('Here you go:\n```json\n{"verdict": "FAIL", "reason": "No time."}\n```')
    async with httpx.AsyncClient() as http:
        judge = OpenAICompatibleJudge(fake_openai.url + "/v1/", "m", http=http)
        answer = await judge.judge(CRITERION, EVIDENCE)
    assert (answer.status, answer.reason) == ("fail", "No time.")
    assert "Authorization" not in fake_openai.requests[0][1]  # no key configured: none sent


async def test_error_status_is_not_evaluated(fake_openai: FakeOpenAI) -> None:
    fake_openai.status = 500
    fake_openai.reply = {"error": {"message": "model overloaded"}}
    answer = await OpenAICompatibleJudge(fake_openai.url, "m").judge(CRITERION, EVIDENCE)
    assert answer.status == "not_evaluated"
    assert answer.reason.startswith("the judge answered HTTP 500") and "model overloaded" in answer.reason


async def test_non_json_body_is_not_evaluated(fake_openai: FakeOpenAI) -> None:
    fake_openai.raw = "<html>proxy error</html>"
    answer = await OpenAICompatibleJudge(fake_openai.url, "m").judge(CRITERION, EVIDENCE)
    assert answer.status == "not_evaluated" and "not JSON" in answer.reason


async def test_unreachable_judge_is_not_evaluated() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    judge = OpenAICompatibleJudge(f"http://127.0.0.1:{port}", "m", timeout_s=5)
    verdict = await verdict_for(EVIDENCE, [JudgeExpectation(criterion=CRITERION)], judge)
    assert not verdict.passed
    assert verdict.results[0].status == "not_evaluated"
    assert verdict.results[0].detail.startswith("the judge could not be reached")


def test_not_configured_without_base_url_or_model() -> None:
    assert judge_from_settings(Settings(_env_file=None)) is None  # type: ignore[call-arg]
    assert judge_from_settings(Settings(_env_file=None, judge_base_url="http://x")) is None  # type: ignore[call-arg]
    assert judge_from_settings(Settings(_env_file=None, judge_model="m")) is None  # type: ignore[call-arg]


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLCHECK_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("CALLCHECK_JUDGE_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("CALLCHECK_JUDGE_API_KEY", "sk-env")
    judge = judge_from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    assert judge is not None
    assert (judge.url, judge.model) == ("http://127.0.0.1:9/v1/chat/completions", "gpt-4o-mini")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"choices": [{"message": {"content": '{"verdict": "pass", "reason": "ok"}'}}]}, "pass"),
        ({"choices": [{"message": {"content": '{"verdict": "passed"}'}}]}, "pass"),
        ({"choices": [{"message": {"content": '{"verdict": "fail", "reason": "no"}'}}]}, "fail"),
        ({"choices": [{"message": {"content": '{"verdict": "maybe"}'}}]}, "not_evaluated"),
        ({"choices": [{"message": {"content": "I think it passed."}}]}, "not_evaluated"),
        ({"choices": [{"message": {"content": "{not json}"}}]}, "not_evaluated"),
        ({"choices": [{"message": {"content": ""}}]}, "not_evaluated"),
        ({"choices": [{"message": {"content": None}}]}, "not_evaluated"),
        ({"choices": []}, "not_evaluated"),
        ({}, "not_evaluated"),
        ([1, 2], "not_evaluated"),
        ("text", "not_evaluated"),
    ],
)
def test_parse_judge_reply_defensively(body: Any, status: str) -> None:
    answer = parse_judge_reply(body)
    assert answer.status == status
    assert answer.reason


def test_request_and_url_shapes() -> None:
    body = judge_request("m", CRITERION, EVIDENCE)
    assert body["model"] == "m" and body["temperature"] == 0
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "Final call state: completed." in body["messages"][1]["content"]
    assert completions_url("https://api.example.test/") == "https://api.example.test/v1/chat/completions"
    assert completions_url("https://api.example.test/v1") == "https://api.example.test/v1/chat/completions"
