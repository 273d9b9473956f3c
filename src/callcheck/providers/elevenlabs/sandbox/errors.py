"""The sandbox's ElevenLabs-style errors."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi.responses import JSONResponse


class SandboxAPIError(Exception):
    """An ElevenLabs-style error: `{"detail": {type, code, status, message, request_id, param?}}` (§9.2)."""

    def __init__(
        self,
        status_code: int,
        type_: str,
        code: str,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail: dict[str, Any] = {
            "type": type_,
            "code": code,
            "status": code,  # the legacy duplicate of `code` that older clients read
            "message": message,
            "request_id": secrets.token_hex(16),
        }
        if param is not None:
            self.detail["param"] = param
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        """The error as an HTTP response."""
        return JSONResponse({"detail": self.detail}, status_code=self.status_code, headers=self.headers)


def not_found(code: str, what: str, ident: str) -> SandboxAPIError:
    """A 404 in ElevenLabs' words, e.g. "Agent with id 'x' was not found."."""
    return SandboxAPIError(404, "not_found", code, f"{what} with id '{ident}' was not found.")
