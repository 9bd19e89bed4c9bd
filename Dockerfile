# syntax=docker/dockerfile:1
#
# One Ordinaut image, every entry point:
#   docker run IMAGE                       ordinaut api (uvicorn on 0.0.0.0:8080)
#   docker run IMAGE scheduler|worker|migrate|...   the ordinaut CLI (ECS, Cloud Run, compose)
#   Lambda image_config.command = ["functions.api.handler.handler"] (or scheduler, worker,
#   events, migrate): the entrypoint hands a functions.* handler string to awslambdaric.
#
# Build for Lambda or Cloud Run from any machine:
#   docker build --platform linux/amd64 -t ordinaut:local .
# The package is installed with its `server` extra (a plain install is the client only), and
# every dependency at the version constraints.txt pins (`make constraints` regenerates it), from
# wheels only: no compiler in any stage. The embedded PostgreSQL/Redis (the package's `embedded`
# extra, for `ordinaut dev` and the tests) are not installed. The SQL migrations travel inside
# the package (ordinaut/migrations), where `ordinaut migrate` and the migrate function read them.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtual environment with the package and the Lambda runtime client ----------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY shared/ shared/
COPY migrations/ migrations/

RUN pip install --only-binary=:all: --constraint constraints.txt ".[server]" \
        "awslambdaric>=3" \
        "aws-lambda-powertools>=2.30" \
        "boto3>=1.34" \
    && pip check

# --- runtime: slim, non-root, no compilers ---------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="ordinaut" \
      org.opencontainers.image.description="Durable task scheduling: API, scheduler, workers (containers and AWS Lambda)" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    LAMBDA_TASK_ROOT=/app \
    ORDINAUT_API_HOST=0.0.0.0 \
    ORDINAUT_METRICS_HOST=0.0.0.0 \
    ORDINAUT_API_PORT=8080 \
    ORDINAUT_HOME=/tmp/ordinaut

RUN groupadd --system --gid 10001 ordinaut \
    && useradd --system --uid 10001 --gid ordinaut --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin ordinaut

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
COPY functions/ functions/
COPY --chmod=0755 local/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# Bytecode compiled now: Lambda's file system is read-only, so a cold start cannot cache it.
RUN python -m compileall -q functions

USER 10001:10001

# api, scheduler metrics, worker metrics
EXPOSE 8080 9101 9102

ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["api"]
