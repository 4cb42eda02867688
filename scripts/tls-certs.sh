#!/usr/bin/env bash
# A local certificate authority and the certificates `make run-tls` (and
# `make run-replicas TLS=1`) start the services with, made with openssl
# into DIR (default run/tls), every file 0600:
#   ca.pem, ca-key.pem             the CA (10 years); trust ca.pem to talk to the services
#   order.pem, payment.pem, nginx.pem   server certificates for localhost, 127.0.0.1
#                                        and the service's name (compose, Kubernetes)
#   order-client.pem               order-service's identity towards payment (mutual TLS)
#   operator.pem                   yours, for payment's admin routes (curl -K DIR/curlrc)
# each with its -key.pem, plus curlrc (curl's --cacert, --cert and --key).
# A leaf is made again when it is missing or expires within a day; the
# CA is kept, so a browser or system that trusts it keeps trusting it.
# Rotation: delete DIR (or a leaf) and restart; see the README.
#
# `scripts/tls-certs.sh compose` (make up-tls) also copies what the
# containers read into run/tls-compose: compose passes file secrets as bind
# mounts with the host's owner and mode (its uid/gid/mode settings are for
# swarm only), and the image runs as uid 10001. The copies are group 10001
# and 0640 where this user may chgrp (root), else 0644, said aloud.
set -euo pipefail
cd "$(dirname "$0")/.."
COMPOSE=""
if [[ "${1:-}" == compose ]]; then COMPOSE=run/tls-compose; shift; fi
DIR=${1:-run/tls}
mkdir -p "$DIR"
chmod 700 "$DIR"
umask 077

fresh() { [[ -s "$DIR/$1.pem" ]] && openssl x509 -in "$DIR/$1.pem" -noout -checkend 86400 >/dev/null 2>&1; }

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$DIR/$1-key.pem" 2>/dev/null; }

if ! fresh ca; then
  key ca
  openssl req -x509 -new -key "$DIR/ca-key.pem" -out "$DIR/ca.pem" -days 3650 \
    -subj "/CN=reliable-orders local CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  rm -f "$DIR"/{order,payment,nginx,order-client,operator}.pem
  echo "new local CA: $DIR/ca.pem" >&2
fi

leaf() { # name usage(serverAuth|clientAuth) subject-alt-names
  local name=$1 usage=$2 names=$3
  fresh "$name" && return 0
  key "$name"
  openssl req -new -key "$DIR/$name-key.pem" -subj "/CN=$name" -out "$DIR/$name.csr" 2>/dev/null
  openssl x509 -req -in "$DIR/$name.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca-key.pem" \
    -set_serial "0x$(openssl rand -hex 16)" -days 90 -out "$DIR/$name.pem" \
    -extfile <(printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' "$usage" "$names") 2>/dev/null
  rm -f "$DIR/$name.csr"
}

# Loopback, and the names compose and Kubernetes give the services.
servers="DNS:localhost,IP:127.0.0.1,IP:::1"
leaf order serverAuth "$servers,DNS:order-service"
leaf payment serverAuth "$servers,DNS:payment-service"
leaf nginx serverAuth "$servers,DNS:nginx"
leaf order-client clientAuth "DNS:order-service"
leaf operator clientAuth "DNS:operator"

cat >"$DIR/curlrc" <<CURLRC
cacert = "$(cd "$DIR" && pwd)/ca.pem"
cert = "$(cd "$DIR" && pwd)/operator.pem"
key = "$(cd "$DIR" && pwd)/operator-key.pem"
CURLRC
chmod 600 "$DIR"/*

if [[ -n "$COMPOSE" ]]; then
  install -d -m 0755 "$COMPOSE"
  for f in ca order order-key payment payment-key order-client order-client-key operator operator-key; do
    if chgrp 10001 "$DIR/$f.pem" 2>/dev/null; then
      install -m 0640 -g 10001 "$DIR/$f.pem" "$COMPOSE/$f.pem"
      chgrp "$(id -g)" "$DIR/$f.pem"
    else
      install -m 0644 "$DIR/$f.pem" "$COMPOSE/$f.pem"
      shared=1
    fi
  done
  [[ -n "${shared:-}" ]] && echo "the containers' copies in $COMPOSE are readable by every user of this machine (chgrp 10001 needs root)" >&2
  true
fi
