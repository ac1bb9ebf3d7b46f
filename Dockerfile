# syntax=docker/dockerfile:1
#
# Vigil: one image for every role: `vigil hub`, `vigil relay`, `vigil up` and the CLI.
# Vigil runs its TypeScript sources through tsx, a runtime dependency, so there is no build stage:
# the image holds the sources and the production dependencies ("dependencies" in package.json).
#
#   docker build -t vigil .
#   docker run --rm vigil --help
#   docker run --rm vigil hub --config /etc/vigil/hub.yaml      # with the config mounted there
#
# The default command is `vigil up` (hub + one relay, embedded storage under /app/data). vigil.yaml listens on
# loopback only, so publish the API with an env override:
#   docker run --rm -p 127.0.0.1:8080:8080 -e VIGIL_LISTEN_API=0.0.0.0:8080 vigil
#
# Read-only root filesystem: tsx keeps a transpile cache under /tmp, so give the container a writable /tmp
# (compose: `tmpfs: [/tmp]`, Kubernetes: an emptyDir). deploy/compose and deploy/helm do that.

FROM node:20-bookworm-slim

ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false

WORKDIR /app

# A fixed numeric UID/GID: Kubernetes `runAsNonRoot` can only verify a numeric user, and volumes can be
# prepared for it (the Helm chart sets runAsUser/fsGroup 10001).
RUN groupadd --system --gid 10001 vigil \
 && useradd --system --uid 10001 --gid vigil --home-dir /app --no-create-home --shell /usr/sbin/nologin vigil

# Dependencies first, so this layer is reused while only sources change. --omit=dev: tsx, yaml and the rest
# of what `vigil` imports are in "dependencies" (test/deploy checks that). --ignore-scripts: no runtime
# dependency needs an install script (esbuild, used by tsx, ships its binary as an optional dependency).
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# Sources. .dockerignore is an allowlist: only what `vigil` needs at run time is in the build context.
COPY . .

# The only places the vigil user may write: /app/data (embedded storage of `vigil up`) and /var/lib/vigil
# (a relay's key, `relay.keyFile`, usually a volume). Sources and node_modules stay root-owned and read-only.
RUN mkdir -p /app/data /var/lib/vigil \
 && chown vigil:vigil /app/data /var/lib/vigil \
 && chmod 0700 /app/data /var/lib/vigil

USER 10001:10001

# REST API, gRPC (relays and `vigil connect`), and the protocol front doors: postgres, ssh, http.
EXPOSE 8080 8010 15432 2222 8443

# Node is PID 1 and handles SIGTERM itself: a hub closes, a relay drains (relay.drainTimeoutMs, default 30 s).
ENTRYPOINT ["node", "bin/vigil.js"]
CMD ["up", "--config", "vigil.yaml"]
