"""The floor of figure 1: what the same stack costs with none of callcheck's work.

A FastAPI app on uvicorn (as `callcheck serve` runs it) with one route, `POST /api/call`, that validates the seed's
body with pydantic, builds the outbound-call payload and sends it with httpx to the stand-in, and answers with the
stand-in's JSON: no database, no durable workflow, no middleware, no follow-up. `bench/run.py` measures it beside the
direct request and callcheck itself, so the README can say how much of callcheck's overhead is the stack (ASGI
server, framework, HTTP client) on this machine and how much is callcheck's own durable work.

Run alone: `python bench/floor.py --port 8791 --upstream http://127.0.0.1:8790`.
"""

from __future__ import annotations

import argparse
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class CallBody(BaseModel):
    to_number: str
    business_description: str
    scenario: str | None = None


def floor_app(upstream: str) -> FastAPI:
    """The app: one route, one outbound request per call, one shared HTTP client."""
    app = FastAPI()
    client = httpx.AsyncClient(base_url=upstream, timeout=30, headers={"xi-api-key": "bench-key"})

    @app.post("/api/call")
    async def call(body: CallBody) -> dict[str, Any]:
        payload = {
            "agent_id": "agent_bench",
            "agent_phone_number_id": "phnum_bench",
            "to_number": body.to_number,
            "conversation_initiation_client_data": {
                "conversation_config_override": {
                    "agent": {"prompt": {"prompt": body.business_description}, "first_message": body.scenario or ""}
                },
            },
        }
        answer = await client.post("/v1/convai/twilio/outbound-call", json=payload)
        answer.raise_for_status()
        result: dict[str, Any] = {"ok": True, "raw": answer.json()}
        return result

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    uvicorn.run(floor_app(args.upstream), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
