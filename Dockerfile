# Builds the one tessera binary; docker-compose.yml runs it as API nodes and workers.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o /out/tessera ./cmd/tessera

FROM debian:bookworm-slim
COPY --from=build /out/tessera /usr/local/bin/tessera
USER 65534:65534
ENTRYPOINT ["tessera"]
