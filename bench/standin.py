"""A minimal stand-in for the ElevenLabs endpoints callcheck uses, with a fixed latency on every request.

It does as little as possible per request, so that the figures measure callcheck, not the stand-in: conversations
are kept in a dict and never move on their own (a call rings until the bench finishes it with a webhook). Every
request is counted by route, so the bench can say how many upstream requests callcheck made.

Run: `python bench/standin.py --port 8790 --latency-ms 200` (uvicorn, one process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import Counter
from typing import Any
from urllib.parse import parse_qs

API_KEY = "bench-key"
AGENT_ID = "agent_bench"
PHONE_NUMBER_ID = "phnum_bench"


class StandIn:
    """An ASGI app: outbound-call, conversation list/get/audio, agent; `/_standin/*` to inspect and drive it."""

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self.conversations: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []  # conversation ids, oldest first
        self.counts: Counter[str] = Counter()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path: str = scope["path"]
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        status, answer = await self.route(scope["method"], path, query, body)
        data = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def route(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        if path.startswith("/_standin/"):
            return self.control(path, body)
        prefix = "/v1/convai/conversations/"
        kind = (
            "outbound"
            if path == "/v1/convai/twilio/outbound-call"
            else "list"
            if path == "/v1/convai/conversations"
            else "audio"
            if path.endswith("/audio")
            else "get"
            if path.startswith(prefix)
            else "agent"
            if path.startswith("/v1/convai/agents/")
            else "other"
        )
        self.counts[kind] += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if kind == "outbound" and method == "POST":
            payload = json.loads(body)
            conversation_id = "conv_" + uuid.uuid4().hex
            client_data = payload.get("conversation_initiation_client_data") or {}
            self.conversations[conversation_id] = {
                "conversation_id": conversation_id,
                "agent_id": payload.get("agent_id"),
                "user_id": client_data.get("user_id"),
                "status": "initiated",
                "start_time_unix_secs": int(time.time()),
                "transcript": [],
            }
            self.order.append(conversation_id)
            return 200, {
                "success": True,
                "message": "Call initiated successfully",
                "conversation_id": conversation_id,
                "callSid": "CA" + uuid.uuid4().hex,
            }
        if kind == "list":
            return 200, self.listing(query)
        if kind == "get":
            conversation = self.conversations.get(path.removeprefix(prefix))
            return (200, self.render(conversation)) if conversation else (404, {"detail": "not found"})
        if kind == "audio":
            return 404, {"detail": {"message": "no audio"}}
        if kind == "agent":
            return 200, {"agent_id": AGENT_ID, "platform_settings": {"overrides": {}}}
        return 404, {"detail": "not found"}

    def listing(self, query: dict[str, str]) -> dict[str, Any]:
        after = int(query.get("call_start_after_unix", "0") or 0)
        size = min(int(query.get("page_size", "30")), 100)
        start = int(query.get("cursor", "0") or 0)
        rows: list[dict[str, Any]] = []
        newest_first = self.order[::-1]
        index = start
        while index < len(newest_first) and len(rows) < size:
            conversation = self.conversations[newest_first[index]]
            index += 1
            if query.get("user_id") and conversation["user_id"] != query["user_id"]:
                continue
            if query.get("agent_id") and conversation["agent_id"] != query["agent_id"]:
                continue
            if conversation["start_time_unix_secs"] <= after:
                break  # newest first: everything further is older still
            rows.append(
                {
                    "agent_id": conversation["agent_id"],
                    "conversation_id": conversation["conversation_id"],
                    "start_time_unix_secs": conversation["start_time_unix_secs"],
                    "call_duration_secs": 0,
                    "message_count": len(conversation["transcript"]),
                    "status": conversation["status"],
                    "call_successful": "unknown",
                }
            )
        more = index < len(newest_first) and len(rows) == size
        return {"conversations": rows, "next_cursor": str(index) if more else None, "has_more": more}

    def render(self, conversation: dict[str, Any]) -> dict[str, Any]:
        return {
            **conversation,
            "metadata": {"start_time_unix_secs": conversation["start_time_unix_secs"], "call_duration_secs": 0},
            "analysis": None,
            "has_audio": False,
        }

    def control(self, path: str, body: bytes) -> tuple[int, Any]:
        if path == "/_standin/stats":
            return 200, {"counts": dict(self.counts), "conversations": len(self.conversations)}
        if path == "/_standin/reset":
            self.counts.clear()
            return 200, {}
        if path == "/_standin/status":  # {"conversation_ids": [...], "status": "done"}: move without a webhook
            data = json.loads(body)
            for conversation_id in data["conversation_ids"]:
                if conversation_id in self.conversations:
                    self.conversations[conversation_id]["status"] = data["status"]
            return 200, {}
        return 404, {}


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    args = parser.parse_args()
    uvicorn.run(
        StandIn(args.latency_ms / 1000), host="127.0.0.1", port=args.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
