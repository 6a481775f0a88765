# syntax=docker/dockerfile:1
# OmniNode Bridge production image: `omninode-bridge serve` against external PostgreSQL, Redis and
# Kafka (see compose.yaml). Build: docker build -t omninode-bridge .

# --- Stage 1: resolve and install the locked dependencies into /app/.venv -------------------------
FROM python:3.11-slim AS builder

# uv from PyPI, the same way `make install` bootstraps it.
RUN pip install --no-cache-dir --disable-pip-version-check uv

# COMPILE_BYTECODE: ship .pyc so the non-root runtime never needs to write them for dependencies.
# LINK_MODE=copy: the uv cache is a cache mount, so hard links into it would dangle in the image.
# PYTHON_DOWNLOADS=never: use this image's interpreter, the one the runtime stage has too, so the
# venv's python symlink (/usr/local/bin/python3.11) resolves in both stages.
ENV UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never

WORKDIR /app

# Dependencies first, from the lock file alone: this layer is rebuilt only when they change, not on
# every source edit. --no-dev drops the pytest/ruff group that [tool.uv] default-groups would add.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# Then the project itself. It is installed editable (uv's default) on purpose: migrations.py finds
# alembic.ini and alembic/ relative to src/, so the sources must stay at /app/src, not in site-packages.
# README.md is the package's readme, which hatchling reads when it builds the project.
COPY README.md alembic.ini ./
COPY alembic/ ./alembic/
COPY contracts/ ./contracts/
COPY src/ ./src/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev

# --- Stage 2: the runtime, without uv or build caches -------------------------------------------
FROM python:3.11-slim AS runtime

RUN groupadd --system --gid 10001 omninode \
    && useradd --system --uid 10001 --gid omninode --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin omninode

# Same path as in the builder: the venv's scripts and the editable install hard-code /app.
COPY --from=builder --chown=omninode:omninode /app /app

ENV PATH=/app/.venv/bin:$PATH \
    OMNINODE_ENV=production \
    OMNINODE_HOST=0.0.0.0 \
    OMNINODE_PORT=8000 \
    PYTHONUNBUFFERED=1

WORKDIR /app
EXPOSE 8000
USER omninode

# Liveness only (the process answers HTTP); /health/ready also checks the database and the broker.
# Python's urllib because slim images have no curl; urlopen raises, so exits non-zero, on errors
# and on non-2xx answers.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4)"]

# `serve` refuses to start unless OMNINODE_DATABASE_URL, OMNINODE_REDIS_URL and
# OMNINODE_KAFKA_BOOTSTRAP_SERVERS are set and, in production, real OMNINODE_API_KEYS and
# OMNINODE_STAMP_SECRET are given. Run migrations first with `omninode-bridge migrate`.
CMD ["omninode-bridge", "serve"]
