# syntax=docker/dockerfile:1
# migrator: online migration between MongoDB-compatible databases through Amazon Kinesis.
#   docker build -t migrator .
#   docker run --rm migrator full-migrate --source-uri ... --target-uri ...

ARG NODE_VERSION=24

# 1. Build: compile TypeScript, then keep only the production dependencies.
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --ignore-scripts

# 2. Fetch the MongoDB Database Tools (mongodump, mongorestore) from MongoDB's official packages,
#    at a pinned version. Only the .deb travels on; curl stays in this stage.
FROM debian:bookworm-slim AS tools
ARG TARGETARCH
ARG MONGODB_TOOLS_VERSION=100.10.0
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && arch="$([ "$TARGETARCH" = "arm64" ] && echo arm64 || echo x86_64)" \
 && curl -fsSL -o /tmp/mongodb-database-tools.deb \
      "https://fastdl.mongodb.org/tools/db/mongodb-database-tools-debian12-${arch}-${MONGODB_TOOLS_VERSION}.deb"

# 3. Runtime: Node LTS, the tools, the compiled app; runs as the unprivileged `node` user and
#    writes only under /data (works with a read-only root filesystem).
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
# Heap limit for the documented container size (README "Container sizing": 512 MiB per container):
# a 256 MiB old space leaves room for the young generation, buffers, code and mongodump/mongorestore
# during the load. Override NODE_OPTIONS together with the container's memory limit.
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-old-space-size=256 \
    MIGRATOR_DATA_DIR=/data \
    MIGRATOR_LOG_FORMAT=json
COPY --from=tools /tmp/mongodb-database-tools.deb /tmp/mongodb-database-tools.deb
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates /tmp/mongodb-database-tools.deb \
 && rm -rf /var/lib/apt/lists/* /tmp/mongodb-database-tools.deb \
 && mongodump --version && mongorestore --version
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN chmod 0755 /app/dist/cli/main.js \
 && ln -s /app/dist/cli/main.js /usr/local/bin/migrator \
 && mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
ENTRYPOINT ["migrator"]
CMD ["--help"]
