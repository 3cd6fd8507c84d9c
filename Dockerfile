# syntax=docker/dockerfile:1

# --- builder: install the package and its dependencies into a self-contained venv -------------
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Dependencies change less often than the code: resolve them in their own layer.
COPY pyproject.toml README.md ./
RUN mkdir -p app workers migrations \
    && touch app/__init__.py workers/__init__.py migrations/__init__.py \
    && pip install . \
    && pip uninstall -y ledger-incidences
COPY app ./app
COPY workers ./workers
COPY migrations ./migrations
RUN pip install --no-deps . && python -m compileall -q /opt/venv

# --- runtime: slim image, non-root, no build tools -------------------------------------------
FROM python:3.11-slim AS runtime

LABEL org.opencontainers.image.title="ledger-incidences" \
      org.opencontainers.image.description="Pre-computed general-ledger incidences for monthly closings"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/var/lib/ledger-incidences

RUN groupadd --system --gid 10001 ledger \
    && useradd --system --uid 10001 --gid ledger --no-create-home \
       --home-dir /var/lib/ledger-incidences --shell /usr/sbin/nologin ledger \
    && mkdir -p /var/lib/ledger-incidences \
    && chown ledger:ledger /var/lib/ledger-incidences

COPY --from=builder /opt/venv /opt/venv

USER ledger:ledger
WORKDIR /var/lib/ledger-incidences
EXPOSE 8000

# Liveness only (no dependency is touched); orchestrators use /ready for routing.
# The slim image has no curl: Python's standard library does the request.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/alive' % os.environ.get('PORT', '8000'), timeout=2)"]

# SIGTERM starts the drain: /ready turns 503 for SHUTDOWN_DRAIN_SECONDS, then in-flight
# requests finish and the process exits 0.
STOPSIGNAL SIGTERM
CMD ["ledger-incidences", "serve"]
