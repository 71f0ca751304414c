#!/usr/bin/env bash
# A real local control plane, and what CI checks on it (issue 16):
#   - deploy/ is accepted by a real kube-apiserver: `kubectl apply --dry-run=server` of
#     the base, both overlays and the examples (after creating the namespace for real,
#     which a dry run of the Namespace would not);
#   - the real node authorizer (--authorization-mode=Node,RBAC with NodeRestriction)
#     lets a node read the VolumeAttachment of a volume attached to it, refuses a node's
#     read of another node's VolumeAttachment with 2018's error (today's wording: "no
#     relationship found between node"), and refuses the read of one that does not
#     exist yet in the same words (authorization runs before storage).
#
# Usage: ci/kube-check.sh [DIR]   (DIR: where the control plane lives; default a temp
# dir, removed at the end). The programs come from ci/install-kube.sh (built once,
# cached). Every component logs to DIR/log/<name>.log; a component that does not come
# up is named with the tail of its log. Everything started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(bash ci/install-kube.sh)
if [ $# -gt 0 ]; then
  D=$1
  mkdir -p "$D"
else
  D=$(mktemp -d -t trainride-kube.XXXXXX)
  trap 'stop; rm -rf "$D"' EXIT
fi
mkdir -p "$D/pki" "$D/log" "$D/etcd" "$D/run"
pids=()
# Stops the components in the reverse order of their start (etcd last: an API server
# whose etcd is gone hangs in its graceful shutdown), each given 10 s before SIGKILL.
stop() {
  local i p t
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    p=${pids[i]}
    kill "$p" 2>/dev/null || continue
    for ((t = 0; t < 50; t++)); do
      kill -0 "$p" 2>/dev/null || break
      sleep 0.2
    done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pids=()
}
[ $# -gt 0 ] && trap stop EXIT

fail() { echo "kube-check: $*" >&2; exit 1; }

# Free loopback ports for etcd (client, peer) and the API server.
read -r etcd_port peer_port api_port < <(python3 -c '
import socket
ss=[socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1",0))
print(*[s.getsockname()[1] for s in ss])')

# --- PKI: one CA; the API server's serving certificate; a client certificate per
# identity (the admin in system:masters, the controller manager, the scheduler, and a
# kubelet per node as system:node:<name> in system:nodes); the service-account keys.
pki=$D/pki
openssl_q() { openssl "$@" 2>/dev/null; }
openssl_q req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=trainride-kube-ca" \
  -keyout "$pki/ca.key" -out "$pki/ca.crt"
cat >"$pki/apiserver.ext" <<EXT
subjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:10.96.0.1
extendedKeyUsage=serverAuth
EXT
issue() { # name subject extfile-or-empty
  openssl_q req -newkey rsa:2048 -nodes -subj "$2" -keyout "$pki/$1.key" -out "$pki/$1.csr"
  if [ -n "$3" ]; then
    openssl_q x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
      -days 2 -extfile "$3" -out "$pki/$1.crt"
  else
    printf 'extendedKeyUsage=clientAuth\n' >"$pki/client.ext"
    openssl_q x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
      -days 2 -extfile "$pki/client.ext" -out "$pki/$1.crt"
  fi
}
issue apiserver "/CN=kube-apiserver" "$pki/apiserver.ext"
issue admin "/O=system:masters/CN=kubernetes-admin" ""
issue controller-manager "/CN=system:kube-controller-manager" ""
issue scheduler "/CN=system:kube-scheduler" ""
for n in node-1 node-2; do issue "$n" "/O=system:nodes/CN=system:node:$n" ""; done
openssl_q genrsa -out "$pki/sa.key" 2048
openssl_q rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

kubeconfig() { # name -> $D/<name>.kubeconfig with that client certificate
  cat >"$D/$1.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: $1
  user:
    client-certificate: $pki/$1.crt
    client-key: $pki/$1.key
contexts:
- name: $1
  context: {cluster: local, user: $1}
current-context: $1
KC
}
for n in admin controller-manager scheduler node-1 node-2; do kubeconfig "$n"; done

start() { # name args...
  local name=$1
  shift
  "$@" >"$D/log/$name.log" 2>&1 &
  pids+=($!)
}
wait_for() { # name seconds command...
  local name=$1 secs=$2
  shift 2
  local until=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $until ]; then
      tail -n 20 "$D/log/$name.log" >&2 || true
      fail "$name did not come up within $secs s (log: $D/log/$name.log)"
    fi
    sleep 0.2
  done
}
started=$SECONDS
start etcd "$bin/etcd" --name=node0 --data-dir="$D/etcd" \
  --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
  --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
  --initial-cluster="node0=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level=warn
wait_for etcd 30 curl -fsS "http://127.0.0.1:$etcd_port/health"
start kube-apiserver "$bin/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" \
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --service-cluster-ip-range=10.96.0.0/16 --allow-privileged=true --endpoint-reconciler-type=none
K=("$bin/kubectl" --kubeconfig "$D/admin.kubeconfig")
wait_for kube-apiserver 90 "${K[@]}" get --raw /readyz
start kube-controller-manager "$bin/kube-controller-manager" \
  --kubeconfig="$D/controller-manager.kubeconfig" --secure-port=0 --leader-elect=false \
  --use-service-account-credentials=true --service-account-private-key-file="$pki/sa.key" \
  --root-ca-file="$pki/ca.crt" --cluster-signing-cert-file="$pki/ca.crt" \
  --cluster-signing-key-file="$pki/ca.key"
start kube-scheduler "$bin/kube-scheduler" --kubeconfig="$D/scheduler.kubeconfig" \
  --secure-port=0 --leader-elect=false
# The controller manager is up once it has made the default ServiceAccount of a namespace.
wait_for kube-controller-manager 90 "${K[@]}" -n default get serviceaccount default
echo "control plane (etcd, kube-apiserver with Node,RBAC + NodeRestriction, kube-controller-manager, kube-scheduler) up in $((SECONDS - started)) s"
"${K[@]}" version

echo "== deploy/: server-side dry run on the real API server"
"${K[@]}" create namespace cephfs-csi >/dev/null
for k in deploy/base deploy/overlays/attach-required deploy/overlays/manila deploy/examples; do
  out=$("${K[@]}" apply --dry-run=server -k "$k" 2>&1) || { echo "$out" >&2; fail "$k refused"; }
  echo "$k: $(echo "$out" | wc -l) objects accepted"
done

echo "== the real node authorizer and the VolumeAttachments"
va() { # name node
  "${K[@]}" apply -f - >/dev/null <<VA
apiVersion: storage.k8s.io/v1
kind: VolumeAttachment
metadata:
  name: $1
spec:
  attacher: cephfs.csi.trainride
  nodeName: $2
  source:
    persistentVolumeName: pv-$1
VA
}
as_node() { "$bin/kubectl" --kubeconfig "$D/$1.kubeconfig" get volumeattachment "$2" -o name 2>&1; }
va va-of-node-1 node-1
# The graph is fed by an informer: the node's first read may come a few ms early.
wait_for kube-apiserver 10 as_node node-1 va-of-node-1
out=$(as_node node-1 va-of-node-1) || fail "node-1 cannot read its own VolumeAttachment: $out"
echo "node-1 reads its own VolumeAttachment: $out"
if out=$(as_node node-2 va-of-node-1); then fail "node-2 read node-1's VolumeAttachment: $out"; fi
echo "$out" | grep -q "no relationship found between node 'node-2' and this object" ||
  fail "node-2's read of node-1's VolumeAttachment was refused with another error: $out"
echo "node-2 refused: $out"
if out=$(as_node node-1 va-not-yet-made); then fail "node-1 read a VolumeAttachment that does not exist: $out"; fi
echo "$out" | grep -q "no relationship found between node 'node-1' and this object" ||
  fail "a missing VolumeAttachment was refused with another error: $out"
echo "node-1, a VolumeAttachment not made yet, refused in the same words: $out"
if out=$("$bin/kubectl" --kubeconfig "$D/node-1.kubeconfig" get volumeattachments 2>&1); then
  fail "a node listed VolumeAttachments: $out"
fi
echo "node-1 may not list VolumeAttachments: $out"
echo "kube-check: passed in $((SECONDS - started)) s"
