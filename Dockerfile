# chainrule API: gunicorn with service/gunicorn.conf.py, started by `chainrule serve`,
# exactly as `make run` and scripts/stack-native start it natively.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY engine engine
COPY schemas schemas
COPY service service
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# graphviz provides `dot` for POST /v1/diagram
RUN apt-get update \
    && apt-get install -y --no-install-recommends graphviz \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 chainrule
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels

# Metrics files live on /dev/shm, a tmpfs in every container (docker run, compose, Kubernetes):
# workers write them on every request. gunicorn creates the directory at start-up.
ENV PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    LOG_FORMAT=json \
    PORT=8000 \
    PROMETHEUS_MULTIPROC_DIR=/dev/shm/chainrule-metrics
USER chainrule
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["chainrule", "serve"]
