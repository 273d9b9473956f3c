"""The web pages (Jinja2 + htmx + SSE) and their vendored static files."""
