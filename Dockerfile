# Stockbot as a service: `stockbot run` (bot, HTTP API, scheduler, sender) as a non-root user.
# Build: docker build -t stockbot .   Run with PostgreSQL: docker compose up -d (see docs/deploy.md).
#
# Two stages: the first builds the wheel and installs the exact dependency set of
# requirements.lock into a virtualenv (so every build gets the same versions, whatever is newest
# on PyPI that day); the second copies only that virtualenv, without pip's build leftovers.
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
RUN python -m venv /opt/stockbot
COPY requirements.lock ./
RUN /opt/stockbot/bin/pip install --require-virtualenv -r requirements.lock
COPY pyproject.toml setup.py MANIFEST.in README.md LICENSE ./
COPY bot ./bot
COPY messages ./messages
# The product itself, without letting pip resolve anything beyond the lock.
RUN /opt/stockbot/bin/pip install --no-deps . && /opt/stockbot/bin/pip check


FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/stockbot/bin:$PATH

# CJK glyphs for the charts (/report, /stats) with Chinese product names.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/*

COPY --from=build /opt/stockbot /opt/stockbot

RUN useradd --system --uid 10001 --create-home --home-dir /app stockbot \
    && mkdir /app/data && chown stockbot:stockbot /app/data
USER stockbot
# The working folder is the data volume: a relative SQLite path (the default stockbot.db, or one
# from a copied .env) lands in the volume, never in the container's throw-away layer.
WORKDIR /app/data

# Listen on all interfaces inside the container; publish the port as narrowly as you need.
# The SQLite default lives in the data volume; compose.yaml points DATABASE_URL at PostgreSQL.
# `docker run --env-file .env` overrides these with the file's values: .env.example leaves
# DATABASE_URL and API_HOST commented out for that reason (docs/deploy.md says what to change).
ENV API_HOST=0.0.0.0 \
    API_PORT=8080 \
    DATABASE_URL=sqlite+aiosqlite:////app/data/stockbot.db
VOLUME ["/app/data"]
EXPOSE 8080

# Healthy while the HTTP API answers and the database does (the route answers 503 otherwise).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/v1/health' % os.environ.get('API_PORT', '8080'), timeout=4)"

# `docker run IMAGE` runs the bot; `docker run IMAGE import stock stock.csv`, `doctor` and the
# other subcommands work too. SIGTERM (docker stop) stops it cleanly.
ENTRYPOINT ["stockbot"]
CMD ["run"]
