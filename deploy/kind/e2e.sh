#!/usr/bin/env bash
# End-to-end check of deploy/ on a kind cluster, for users who have kind.
# Not run in CI here: these machines have neither a container runtime for
# kind nor registry access for the node image.
#
#   deploy/kind/e2e.sh
#
# Creates a kind cluster, loads the netseg image into it, installs the CRDs,
# RBAC, admission policy and DaemonSet, applies the examples, and checks
#  - a connection the example NetworkPolicy allows gets through, and one it
#    does not allow is refused;
#  - every node reports itself in its NetsegNode;
#  - the service account cannot write another node's NetsegNode;
#  - what the service account may do (`kubectl auth can-i --list`).
#
# Needs: kind, kubectl, docker (or podman with KIND_EXPERIMENTAL_PROVIDER=podman),
# a host kernel >= 6.6 with BTF, and the image, built as deploy/README.md says.
#
# Environment:
#   NETSEG_IMAGE         the image to test (default ghcr.io/netseg/netseg:0.1.0)
#   NETSEG_KIND_CLUSTER  the cluster's name (default netseg-e2e)
#   NETSEG_KEEP_CLUSTER  1: leave the cluster running at the end
set -euo pipefail

image=${NETSEG_IMAGE:-ghcr.io/netseg/netseg:0.1.0}
cluster=${NETSEG_KIND_CLUSTER:-netseg-e2e}
runtime=${KIND_EXPERIMENTAL_PROVIDER:-docker}
deploy=$(cd "$(dirname "$0")/.." && pwd)
sa=system:serviceaccount:netseg:netseg

log() { printf 'e2e: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

for tool in kind kubectl "$runtime"; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done

if kind get clusters | grep -qx "$cluster"; then
  fail "a kind cluster named $cluster exists; delete it or set NETSEG_KIND_CLUSTER"
fi
log "creating kind cluster $cluster"
kind create cluster --name "$cluster" --wait 120s
if [ "${NETSEG_KEEP_CLUSTER:-0}" != 1 ]; then
  trap 'kind delete cluster --name "$cluster"' EXIT
fi
ctx=(--context "kind-$cluster")

# The DaemonSet requires bpffs on the host (it does not mount it). A kind
# node is a container, whose systemd may not have mounted it: do here what a
# host's boot does, as the node's administrator.
for node in $(kind get nodes --name "$cluster"); do
  if ! "$runtime" exec "$node" grep -q " /sys/fs/bpf bpf " /proc/mounts; then
    log "node $node has no bpffs at /sys/fs/bpf; mounting it"
    "$runtime" exec "$node" mount -t bpf bpf /sys/fs/bpf
  fi
done

log "loading $image"
kind load docker-image "$image" --name "$cluster"

log "installing netseg"
kubectl "${ctx[@]}" apply -f "$deploy/namespace.yaml"
kubectl "${ctx[@]}" apply -f "$deploy/crds/"
kubectl "${ctx[@]}" wait --for=condition=Established --timeout=60s \
  crd/netsegnodes.netseg.dev crd/segments.netseg.dev crd/segmentpolicies.netseg.dev \
  crd/clusternetworkpolicies.policy.networking.k8s.io
kubectl "${ctx[@]}" apply -f "$deploy/rbac.yaml" -f "$deploy/admission.yaml"
kubectl "${ctx[@]}" apply -f "$deploy/daemonset.yaml"
kubectl "${ctx[@]}" -n netseg set image daemonset/netseg netseg="$image" install-cni="$image"
kubectl "${ctx[@]}" -n netseg rollout status daemonset/netseg --timeout=180s

log "applying the examples and the workload"
kubectl "${ctx[@]}" apply -f "$deploy/kind/workload.yaml"
kubectl "${ctx[@]}" apply -f "$deploy/examples/"
kubectl "${ctx[@]}" -n shop wait --for=condition=Ready --timeout=120s pod/backend pod/frontend pod/intruder

backend_ip=$(kubectl "${ctx[@]}" -n shop get pod backend -o jsonpath='{.status.podIP}')
# Give every node's daemon time to publish the policies applied above.
sleep 5

connect() { # from-pod
  kubectl "${ctx[@]}" -n shop exec "$1" -- /agnhost connect "$backend_ip:8080" --timeout=3s --protocol=tcp
}
connect frontend || fail "frontend -> backend:8080 was refused; networkpolicy.yaml allows it"
log "ok: frontend -> backend:8080 allowed"
if connect intruder; then
  fail "intruder -> backend:8080 got through; networkpolicy.yaml admits only the frontend"
fi
log "ok: intruder -> backend:8080 denied"

log "checking the NetsegNode of every node"
for node in $(kubectl "${ctx[@]}" get nodes -o jsonpath='{.items[*].metadata.name}'); do
  ready=$(kubectl "${ctx[@]}" get netsegnode "$node" -o jsonpath='{.status.ready}')
  [ "$ready" = true ] || fail "NetsegNode $node: status.ready is '$ready', expected true"
done
log "ok: every node reports ready"

# Impersonating the service account carries no node claim, so admission.yaml
# must refuse the write whatever the name.
log "checking that the service account cannot write a NetsegNode without its node's token"
if out=$(kubectl "${ctx[@]}" --as="$sa" create -f - 2>&1 <<'EOF'
apiVersion: netseg.dev/v1alpha1
kind: NetsegNode
metadata:
  name: not-my-node
spec: {}
EOF
); then
  fail "the service account created NetsegNode not-my-node"
fi
grep -q netseg-own-node-only <<<"$out" || fail "refused, but not by netseg-own-node-only: $out"
log "ok: refused by netseg-own-node-only"

log "what $sa may do:"
kubectl "${ctx[@]}" auth can-i --list --as="$sa"
kubectl "${ctx[@]}" auth can-i --list --as="$sa" -n netseg
for denied in "get secrets" "delete pods" "delete netsegnodes" "create pods" "update networkpolicies"; do
  # shellcheck disable=SC2086 # the verb and resource are two words
  if kubectl "${ctx[@]}" auth can-i $denied --all-namespaces --as="$sa" >/dev/null; then
    fail "$sa may $denied"
  fi
done
log "ok: no secrets, no deletes, no writes to workloads or NetworkPolicies"
log "passed"
