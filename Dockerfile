# SPDX-License-Identifier: MIT
# qga in a FROM-scratch image: the static binary and nothing else.
#   docker build -t qga .
#   docker run --rm -v /run/qga:/run/qga qga -s /run/qga/qga.sock ping
# Without a Docker daemon, `make image` builds the same image as an OCI
# archive (qga-oci.tar) with umoci.
FROM debian:bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
	make gcc libc6-dev musl-tools && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile qga.c json.c json.h ./
RUN make qga

FROM scratch
COPY --from=build /src/qga /qga
ENTRYPOINT ["/qga"]
CMD ["--help"]
