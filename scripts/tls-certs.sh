#!/usr/bin/env bash
# A local certificate authority and the certificates `make run-tls` (and
# `make run-replicas TLS=1`) start the services with, made with openssl
# into DIR (default run/tls), every file 0600:
#   ca.pem, ca-key.pem             the CA (10 years); trust ca.pem to talk to the services
#   order.pem, payment.pem, nginx.pem   server certificates for localhost and 127.0.0.1
#   order-client.pem               order-service's identity towards payment (mutual TLS)
#   operator.pem                   yours, for payment's admin routes (curl -K DIR/curlrc)
# each with its -key.pem, plus curlrc (curl's --cacert, --cert and --key).
# A leaf is made again when it is missing or expires within a day; the
# CA is kept, so a browser or system that trusts it keeps trusting it.
# Rotation: delete DIR (or a leaf) and restart; see the README.
set -euo pipefail
cd "$(dirname "$0")/.."
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

servers="DNS:localhost,IP:127.0.0.1,IP:::1"
leaf order serverAuth "$servers"
leaf payment serverAuth "$servers"
leaf nginx serverAuth "$servers"
leaf order-client clientAuth "DNS:order-service"
leaf operator clientAuth "DNS:operator"

cat >"$DIR/curlrc" <<CURLRC
cacert = "$(cd "$DIR" && pwd)/ca.pem"
cert = "$(cd "$DIR" && pwd)/operator.pem"
key = "$(cd "$DIR" && pwd)/operator-key.pem"
CURLRC
chmod 600 "$DIR"/*
