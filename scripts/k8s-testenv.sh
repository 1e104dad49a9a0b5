#!/usr/bin/env bash
# Real Kubernetes control plane for the operator tests, from Debian bookworm packages only
# (the project's copy of the workplace recipe, so the suite runs on a fresh machine):
#   etcd            <- Debian binary package etcd-server (3.4.23)
#   kube-apiserver  <- built from Debian source package `kubernetes` (1.20.2, vendored deps)
#   kube-controller-manager (garbage collector + namespace controller), same source
# Usage:  k8s-testenv.sh install   # apt packages + build binaries into $K8S_BIN (cached)
#         k8s-testenv.sh start     # start on 127.0.0.1, write $K8S_RUN/kubeconfig
#         k8s-testenv.sh stop
set -euo pipefail
K8S_BIN=${K8S_BIN:-/var/cache/k8s-testenv/bin}
K8S_BUILD=${K8S_BUILD:-/var/cache/k8s-testenv/build}
K8S_RUN=${K8S_RUN:-/tmp/k8s-testenv}
K8S_PORT=${K8S_PORT:-6443}
ETCD_PORT=${ETCD_PORT:-2379}
TOKEN=${K8S_TOKEN:-test-admin-token}

install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ ! -f /etc/apt/sources.list.d/debian-src.sources ]; then
    cat > /etc/apt/sources.list.d/debian-src.sources <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends etcd-server golang-go rsync jq openssl curl \
    golang-github-modern-go-reflect2-dev >/dev/null
  if [ -x "$K8S_BIN/kube-apiserver" ] && [ -x "$K8S_BIN/kube-controller-manager" ]; then
    echo "k8s-testenv: cached binaries in $K8S_BIN"; return 0
  fi
  rm -rf "$K8S_BUILD"; mkdir -p "$K8S_BUILD" "$K8S_BIN"
  (cd "$K8S_BUILD" && apt-get source --download-only -qq kubernetes 2>/dev/null \
     && tar xzf kubernetes_*.orig.tar.gz)
  local src; src=$(ls -d "$K8S_BUILD"/kubernetes-*/)
  # k8s 1.20 vendors modern-go/reflect2 v1.0.1, which crashes ("fatal error: fault" in
  # mapiterinit) when built with Go >= 1.18. Swap in Debian's reflect2 1.0.2 sources.
  local v="$src/vendor/github.com/modern-go/reflect2"
  rm -f "$v"/*.go "$v"/*.s
  cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go \
     /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$v"/
  (cd "$src" && GOPROXY=off GOFLAGS=-mod=vendor CGO_ENABLED=0 HOME="$K8S_BUILD/home" \
     GOPATH="$K8S_BUILD/gopath" make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$K8S_BUILD/make.log" 2>&1) \
     || { tail -40 "$K8S_BUILD/make.log"; exit 1; }
  cp "$src"/_output/bin/kube-apiserver "$src"/_output/bin/kube-controller-manager "$K8S_BIN"/
  "$K8S_BIN/kube-apiserver" --version
}

start() {
  rm -rf "$K8S_RUN"; mkdir -p "$K8S_RUN/pki"
  ( cd "$K8S_RUN/pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=test-ca -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout apiserver.key -out apiserver.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc,IP:10.0.0.1\nextendedKeyUsage=serverAuth\n' > ext.cnf
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile ext.cnf -out apiserver.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null; openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null )
  # token,user,uid,"group1,group2"  -- add restricted users here to test the operator's RBAC
  echo "$TOKEN,admin,admin-uid,system:masters" > "$K8S_RUN/tokens.csv"
  etcd --name test --data-dir "$K8S_RUN/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT+1))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT+1))" \
    --initial-cluster "test=http://127.0.0.1:$((ETCD_PORT+1))" >"$K8S_RUN/etcd.log" 2>&1 &
  echo $! > "$K8S_RUN/etcd.pid"
  "$K8S_BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$K8S_PORT" --insecure-port=0 \
    --tls-cert-file="$K8S_RUN/pki/apiserver.crt" --tls-private-key-file="$K8S_RUN/pki/apiserver.key" \
    --token-auth-file="$K8S_RUN/tokens.csv" --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$K8S_RUN/pki/sa.pub" --service-account-signing-key-file="$K8S_RUN/pki/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 --endpoint-reconciler-type=none \
    --enable-priority-and-fairness=false >"$K8S_RUN/apiserver.log" 2>&1 &
  echo $! > "$K8S_RUN/apiserver.pid"
  cat > "$K8S_RUN/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:$K8S_PORT
    certificate-authority-data: $(base64 -w0 "$K8S_RUN/pki/ca.crt")
users:
- name: admin
  user: {token: $TOKEN}
contexts:
- name: test
  context: {cluster: test, user: admin, namespace: default}
current-context: test
KC
  local i
  for i in $(seq 1 120); do
    curl -sf --cacert "$K8S_RUN/pki/ca.crt" -H "Authorization: Bearer $TOKEN" \
      "https://127.0.0.1:$K8S_PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.5
  done
  [ "$i" -lt 120 ] || { echo "apiserver not ready"; tail -40 "$K8S_RUN/apiserver.log"; exit 1; }
  # GC of ownerReferences + namespace deletion (the apiserver alone does neither)
  "$K8S_BIN/kube-controller-manager" --kubeconfig="$K8S_RUN/kubeconfig" \
    --controllers=garbagecollector,namespace --leader-elect=false --port=0 --secure-port=0 \
    --use-service-account-credentials=false >"$K8S_RUN/kcm.log" 2>&1 &
  echo $! > "$K8S_RUN/kcm.pid"
  echo "k8s-testenv: ready; export KUBECONFIG=$K8S_RUN/kubeconfig"
}

stop() {
  local p
  for p in kcm apiserver etcd; do
    [ -f "$K8S_RUN/$p.pid" ] && kill "$(cat "$K8S_RUN/$p.pid")" 2>/dev/null || true
  done
}

"${1:?install|start|stop}"
