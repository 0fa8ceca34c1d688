# syntax=docker/dockerfile:1
# Flotilla's image: `docker build -t flotilla .`, then `docker run --rm flotilla --help`.
# Two stages: the first builds and packs the package exactly as it is published (npm pack); the
# second installs that tarball with its production dependencies only and runs as a non-root user.
# scripts/package-check.sh performs the same steps without Docker (CI runs it).
#
# Migrations are yours, not the image's: mount them at /work/migrations (the default --dir), or
# build your own image FROM this one with `COPY migrations /work/migrations`.

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && mkdir -p /pkg && npm pack --pack-destination /pkg

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
COPY --from=build /pkg/ /tmp/pkg/
RUN npm install --global --omit=dev --no-audit --no-fund /tmp/pkg/flotilla-*.tgz \
 && rm -rf /tmp/pkg /root/.npm
# the node image's unprivileged user (uid 1000); nothing of flotilla's needs to write outside /work
USER node
WORKDIR /work
# worker metrics (flotilla worker --metrics-port 9464) and the dashboard (flotilla dashboard --port 8080)
EXPOSE 9464 8080
ENTRYPOINT ["flotilla"]
CMD ["--help"]
