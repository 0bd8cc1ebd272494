# The gridmkt API image used by docker-compose.yml (the database is the postgis/postgis service).
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends npm && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY grid grid
COPY geodata geodata
COPY api api
COPY maps maps
# editable: the map pages read maps/static/node_modules next to the code, which a wheel leaves out
RUN pip install --no-cache-dir -e . \
 && if [ -f maps/static/package.json ]; then cd maps/static && npm ci --no-audit --no-fund --ignore-scripts; fi
ENV GRIDMKT_HOME=/var/lib/gridmkt
EXPOSE 8000
CMD ["gridmkt", "serve", "--host", "0.0.0.0", "--port", "8000"]
