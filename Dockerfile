# syntax=docker/dockerfile:1
# connector-controller: build with `docker build -t ghcr.io/cynodeai/connector-controller:<version> .`
# (the Helm chart's default image; its tag is the chart's appVersion = package.json version).

# ---- build: compile TypeScript to dist/ -------------------------------------------------
FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json tsconfig.build.json ./
COPY controller/ controller/
RUN npm run build

# ---- runtime: production dependencies, the compiled controller and its data ------------
FROM node:24-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error && npm cache clean --force
COPY --from=build /src/dist/ dist/
# The CRDs (schema checks) and the built-in catalog (connectorctl validate's default).
COPY crds/ crds/
COPY examples/types/ examples/types/
COPY examples/policy-templates/ examples/policy-templates/
# Non-root (the distroless "nonroot" id, which the chart's securityContext also uses); the
# chart mounts a read-only root filesystem with writable /tmp and the PGlite data dir.
USER 65532:65532
# The controller's metrics, health and webhook ports; the gateway's API, metrics and health.
EXPOSE 8080 8081 9443 8090 8082 8083
# The controller. The gateway is the same image with `node dist/controller/src/gateway.js`
# (the chart's gateway Deployment sets that command).
ENTRYPOINT ["node", "dist/controller/src/main.js"]
