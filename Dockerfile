# syntax=docker/dockerfile:1
#
# BitBot: one image for every process. The Deployments choose the command:
#   bitbot gateway | worker | admin --host 0.0.0.0 --port N,   bitbot migrate
#
#   docker build -t registry.example.com/bitbot/bitbot:0.1.0 .
#
# No HEALTHCHECK: Kubernetes ignores it and probes /healthz and /readyz itself (k8s/base); the
# port to probe also depends on the command, which the image cannot know.
#
# The base is pinned to a patch release; pinning its digest as well (python:...@sha256:...) makes
# rebuilds reproducible, at the price of bumping it for security fixes.

# --- build: install BitBot and its dependencies into a self-contained virtualenv -------------
FROM python:3.11.14-slim-trixie AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /src
COPY pyproject.toml README.md ./
COPY tenants ./tenants
COPY gateway ./gateway
COPY billing ./billing
COPY admin_ui ./admin_ui
COPY bitbot ./bitbot
COPY migrations ./migrations

# A regular (non-editable) install: the venv no longer needs /src. Every dependency ships
# manylinux wheels for amd64 and arm64, so no compiler is needed here either. pip precompiles the
# installed modules, which matters with a read-only root filesystem.
RUN pip install --no-cache-dir . \
    && pip check

# Smoke test, so a broken image fails the build instead of the rollout: the console script
# starts, and the non-Python files the services load at run time were installed with the package
# (setuptools installs only what [tool.setuptools.package-data] in pyproject.toml lists).
RUN bitbot --help > /dev/null \
    && python -c "import importlib.util as u, pathlib as p; d = lambda m: p.Path(u.find_spec(m).origin).parent; missing = [str(f) for f in (d('admin_ui') / 'templates', d('migrations') / 'versions', d('migrations') / 'script.py.mako') if not f.exists()]; assert not missing, f'not installed (see [tool.setuptools.package-data]): {missing}'"

# --- runtime ---------------------------------------------------------------------------------
FROM python:3.11.14-slim-trixie AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    BITBOT_DATA_DIR=/tmp/bitbot

# A fixed, numeric, unprivileged identity (Kubernetes' runAsNonRoot checks the numeric UID).
RUN groupadd --system --gid 10001 bitbot \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin bitbot

COPY --from=builder /opt/venv /opt/venv

# Nothing is written outside /tmp (Kubernetes mounts an emptyDir there and keeps the root
# filesystem read-only); BITBOT_DATA_DIR only matters for `bitbot run`, the embedded demo.
WORKDIR /app
USER 10001:10001

EXPOSE 8000 8001 8002
ENTRYPOINT ["bitbot"]
CMD ["--help"]
