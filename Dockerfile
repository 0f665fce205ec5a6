# syntax=docker/dockerfile:1
# ssehub hub image: `docker build -t ssehub .`
#   docker run --rm -p 3000:3000 -e SSEHUB_JWT_KEY="$(openssl rand -hex 32)" \
#     -v ssehub-data:/app/ssehub-data --stop-timeout 20 ssehub
#
# On SIGTERM the hub drains its streams over --drain-timeout (default 10 s) and then exits 0.
# `docker stop` waits only 10 s before SIGKILL: give it more (`--stop-timeout 20`, or
# `stop_grace_period: 20s` in Compose) so the drain can finish. Node runs as PID 1 without an
# init: the hub installs its own SIGTERM/SIGINT handlers (src/cli.ts) and starts no child
# processes (unless --workers > 1, whose workers it waits for), so tini is optional
# (`docker run --init` adds it if you want one).

# Both stages use the same image, so the native better-sqlite3 addon built in the first matches
# the Node ABI and glibc of the second.
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
# better-sqlite3 is a native addon: when no prebuilt binary can be downloaded it compiles with node-gyp.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the root `prepare` script would build before the sources are copied. The two
# dependencies that need their install scripts (listed in package.json `allowScripts`, which npm 11
# enforces) are then run explicitly, which works the same with npm 10 and npm 11.
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3 esbuild
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    SSEHUB_LISTEN=0.0.0.0:3000 \
    SSEHUB_TRANSPORT=sqlite:/app/ssehub-data/hub.db
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# The code stays root-owned and read-only to the hub. The sqlite history lives here, the only
# directory the hub writes to.
RUN mkdir -p /app/ssehub-data && chown node:node /app/ssehub-data
VOLUME ["/app/ssehub-data"]
# The `node` user (uid 1000) of the official image. Kubernetes' runAsNonRoot needs the numeric
# id: set runAsUser: 1000 there (deploy/k8s/ does).
USER node
EXPOSE 3000
STOPSIGNAL SIGTERM
# Liveness only (/readyz turns 503 while draining, which is not a reason to restart). Node itself
# does the request: the slim image has no curl or wget. Reads the port from SSEHUB_LISTEN. (A hub
# serving TLS itself with --tls-cert needs an https:// check; behind a TLS-terminating proxy, as
# usual, plain HTTP is right.)
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "const p=(process.env.SSEHUB_LISTEN||'3000').split(':').pop();fetch('http://127.0.0.1:'+p+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve"]
