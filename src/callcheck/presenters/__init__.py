"""Public shapes of stored objects (pydantic models), built from the store's rows: what the JSON API answers (and
documents in /openapi.json), what the pages show and what the CLI prints."""
