# SPDX-License-Identifier: MIT
# qga in a FROM-scratch image: the static binary and nothing else. It is
# cross-compiled on the build machine for the platform asked (amd64,
# arm64, arm/v7, 386, riscv64, ppc64le, s390x), so no emulator is needed:
#   docker build -t qga .
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 -t qga .
#   docker run --rm -v /run/qga:/run/qga qga -s /run/qga/qga.sock ping
# Without a Docker daemon, `make image` builds the same images as one OCI
# archive (contrib/oci).
FROM --platform=$BUILDPLATFORM debian:trixie-slim AS build
ARG TARGETARCH=amd64
RUN set -e; case $TARGETARCH in \
	amd64) a=amd64 t=x86-64-linux-gnu ;; arm64) a=arm64 t=aarch64-linux-gnu ;; \
	arm) a=armhf t=arm-linux-gnueabihf ;; 386) a=i386 t=i686-linux-gnu ;; \
	riscv64) a=riscv64 t=riscv64-linux-gnu ;; ppc64le) a=ppc64el t=powerpc64le-linux-gnu ;; \
	s390x) a=s390x t=s390x-linux-gnu ;; \
	*) echo "qga: no build for $TARGETARCH" >&2; exit 1 ;; esac; \
	if [ "$a" = "$(dpkg --print-architecture)" ]; then gcc=gcc; else gcc=gcc-$t; fi; \
	dpkg --add-architecture "$a"; apt-get update; \
	apt-get install -y --no-install-recommends make "$gcc" libc6-dev "musl-dev:$a"; \
	rm -rf /var/lib/apt/lists/*; echo "$a" >/arch
WORKDIR /src
COPY Makefile qga.c json.c json.h ./
COPY src src/
RUN a=$(cat /arch) && make cross ARCHS="$a" && test -f "cross/qga-$a" && cp "cross/qga-$a" qga

FROM scratch
COPY --from=build /src/qga /qga
ENTRYPOINT ["/qga"]
CMD ["--help"]
