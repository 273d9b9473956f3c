# callcheck: the web server, a worker, or `callcheck run` (docs/production.md). Not built by the test suite.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 CALLCHECK_DATA_DIR=/data
RUN useradd --create-home --uid 1000 callcheck && mkdir /data && chown callcheck /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install .

USER callcheck
VOLUME /data
EXPOSE 5000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/healthz')" || exit 1
CMD ["callcheck", "serve", "--host", "0.0.0.0", "--port", "5000"]
