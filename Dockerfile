# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ENVIRONMENT=docker \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080 \
    GRPC_PORT=50051 \
    DATA_DIR=/app/data
RUN groupadd --system --gid 10001 coordinator \
 && useradd --system --uid 10001 --gid coordinator --home-dir /app --shell /usr/sbin/nologin coordinator \
 && mkdir -p /app/data /app/logs /app/scenarios /app/reports /app/netfault \
 && chown -R coordinator:coordinator /app
COPY --from=build /opt/venv /opt/venv
COPY --chown=coordinator:coordinator scenarios /app/scenarios
WORKDIR /app
USER coordinator
EXPOSE 8080 50051
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import sys,urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/api/v1/health', timeout=2).status == 200 else 1)"
STOPSIGNAL SIGTERM
ENTRYPOINT ["test-coordinator"]
CMD ["serve"]
