# Stockbot as a service: `stockbot run` (bot, HTTP API, scheduler, sender) as a non-root user.
# Build: docker build -t stockbot .   Run with PostgreSQL: docker compose up -d (see docs/deploy.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# CJK glyphs for the charts (/report, /stats) with Chinese product names.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build
COPY pyproject.toml setup.py MANIFEST.in README.md LICENSE ./
COPY bot ./bot
COPY messages ./messages
# A plain (non-editable) install: the wheel carries the message templates and migrations.
RUN pip install . && rm -rf /build

RUN useradd --system --uid 10001 --create-home --home-dir /app stockbot \
    && mkdir /app/data && chown stockbot:stockbot /app/data
USER stockbot
WORKDIR /app

# Listen on all interfaces inside the container; publish the port as narrowly as you need.
# The SQLite default lives in the data volume; compose.yaml points DATABASE_URL at PostgreSQL.
ENV API_HOST=0.0.0.0 \
    API_PORT=8080 \
    DATABASE_URL=sqlite+aiosqlite:////app/data/stockbot.db
VOLUME ["/app/data"]
EXPOSE 8080

# Healthy while the HTTP API answers and the database does (the route answers 503 otherwise).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/v1/health' % os.environ.get('API_PORT', '8080'), timeout=4)"

# `docker run IMAGE` runs the bot; `docker run IMAGE import stock stock.csv` and the other
# subcommands work too. SIGTERM (docker stop) stops it cleanly.
ENTRYPOINT ["stockbot"]
CMD ["run"]
