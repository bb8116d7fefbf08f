#!/bin/bash
# Container healthcheck without curl: one HTTP/1.0 GET over bash's /dev/tcp.
#
#   healthcheck ADDR_VARIABLE DEFAULT_PORT [PATH]
#
# The port comes from the service's own listen-address variable (e.g.
# GATEWAY_ADDR=0.0.0.0:8081), so a changed address needs no image change.
# Exits 0 on a 200 answer from 127.0.0.1:PORT/PATH (default /healthz), else 1.
set -u
var="${1:?listen-address variable name}"
default_port="${2:?default port}"
path="${3:-/healthz}"
addr="${!var:-0.0.0.0:$default_port}"
port="${addr##*:}"

exec 3<>"/dev/tcp/127.0.0.1/${port}" 2>/dev/null || exit 1
printf 'GET %s HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" >&3
IFS= read -r -t 3 status <&3 || exit 1
case "$status" in
  "HTTP/1."?" 200"*) exit 0 ;;
  *) exit 1 ;;
esac
