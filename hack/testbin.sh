#!/usr/bin/env bash
# Builds (once, cached outside the repo) the binaries the integration tests run, from the
# Go module proxy, and prints the directory holding them as the LAST line of stdout
# (progress goes to stderr), so callers can do:  dir=$(hack/testbin.sh | tail -1)
#
#   hack/testbin.sh [kube]     kube-apiserver, kubectl and etcd (the default target)
#   hack/testbin.sh helm       helm v3 for the chart tests (see "target helm" below)
#   hack/testbin.sh openbao    a Vault-API server (bao, or vault) for the secrets tests (see below)
#
# kube: kube-apiserver and kubectl are built from k8s.io/kubernetes at $K8S_VERSION through
# a generated wrapper module that replaces every staging module (k8s.io/api, client-go, ...)
# with its published v0.X.Y; etcd is built from go.etcd.io/etcd/server/v3 at $ETCD_VERSION.
# When KUBEBUILDER_ASSETS is set it must point at a directory with ready binaries
# (kube-apiserver, kubectl, etcd); then nothing is built.
#
# Adding a target: write a recipe (what to build into a temp dir) and a target_<name>
# function that hands it to ensure_built and prints the directory as its last stdout line,
# and add <name> to TARGETS.
#
# Environment: K8S_VERSION, ETCD_VERSION (pins below), TESTBIN_CACHE (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/connector-controller/testbin), GO (the go command),
# GOPROXY/GOMODCACHE/GOCACHE as usual for go.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
TESTBIN_CACHE="${TESTBIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/connector-controller/testbin}"
TARGETS=(kube)

log() { echo "testbin: $*" >&2; }
die() {
  echo "testbin: error: $*" >&2
  exit 1
}

# The go command: $GO, go on PATH, or the usual install location.
find_go() {
  local cand
  for cand in "${GO:-}" "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go; do
    if [ -n "$cand" ] && [ -x "$cand" ]; then
      echo "$cand"
      return 0
    fi
  done
  return 1
}

need_go() {
  GO_CMD="$(find_go)" || die "$1 must be built and no Go toolchain was found (install Go >= 1.26 or set GO=/path/to/go),
  or point KUBEBUILDER_ASSETS at a directory that already holds kube-apiserver, kubectl and etcd
  (for example from 'setup-envtest use -p path')."
  local v
  v="$("$GO_CMD" env GOVERSION)"
  log "using $GO_CMD ($v)"
}

# Runs "$@" with an exclusive lock on $1 (a lock file), so concurrent callers build once.
with_lock() {
  local lockfile="$1"
  shift
  mkdir -p "$(dirname "$lockfile")"
  if command -v flock >/dev/null 2>&1; then
    (
      flock 9
      "$@"
    ) 9>"$lockfile"
  else
    "$@"
  fi
}

# Prints the binaries among $2... that are not executable in directory $1.
missing_in() {
  local dir="$1" b missing=()
  shift
  for b in "$@"; do
    [ -x "$dir/$b" ] || missing+=("$b")
  done
  echo "${missing[*]-}"
}

# given_dir NAME DIR BIN...: DIR, which environment variable NAME set, when it holds every BIN.
given_dir() {
  local name="$1" dir="$2" missing
  shift 2
  missing="$(missing_in "$dir" "$@")"
  [ -z "$missing" ] || die "$name=$dir lacks executable: $missing;
  put them there, or unset $name to build them from the Go module proxy"
  echo "$dir"
}

# Prints field $1 (GoMod, Dir, Info) of `go mod download -json $2` (module@version), or
# nothing when the module proxy does not serve it.
module_field() {
  GOFLAGS=-mod=mod "$GO_CMD" mod download -json "$2" 2>/dev/null |
    sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\$/\1/p" || true
}

# ensure_built LOCK DEST "BIN..." WHAT RECIPE [ARGS...]: the one build skeleton of every
# target. Unless DEST holds every BIN (checked again under the lock file LOCK, since another
# caller may have finished the build meanwhile), it runs `RECIPE TMP ARGS...` in a fresh
# temp dir with the Go build environment set, then publishes TMP as DEST atomically: a
# complete directory appears under its final name or nothing does. A recipe dies on a
# failed build and returns 2 when the proxy does not serve its sources; so does ensure_built.
ensure_built() {
  local lock="$1" dest="$2" bins="$3"
  # shellcheck disable=SC2086
  [ -n "$(missing_in "$dest" $bins)" ] || return 0
  mkdir -p "$TESTBIN_CACHE"
  with_lock "$TESTBIN_CACHE/$lock" build_into "$@"
}

build_into() {
  local dest="$2" bins="$3" what="$4" recipe="$5"
  shift 5
  # shellcheck disable=SC2086
  [ -n "$(missing_in "$dest" $bins)" ] || return 0
  need_go "$what"
  local start=$SECONDS tmp rc=0 missing
  tmp="$(mktemp -d "$TESTBIN_CACHE/.build-$(basename "$dest").XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  export CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" GOFLAGS="-mod=mod -buildvcs=false"
  "$recipe" "$tmp" "$@" || rc=$?
  if [ "$rc" = 0 ]; then
    # shellcheck disable=SC2086
    missing="$(missing_in "$tmp" $bins)"
    [ -z "$missing" ] || die "the build of $what did not produce: $missing"
    chmod 755 "$tmp"
    rm -rf "$dest"
    mv "$tmp" "$dest"
    log "built $what into $dest in $((SECONDS - start))s"
  fi
  rm -rf "$tmp"
  trap - EXIT
  return "$rc"
}

# ---------------------------------------------------------------------------------------
# target kube: kube-apiserver, kubectl, etcd
# ---------------------------------------------------------------------------------------
KUBE_BINARIES="kube-apiserver kubectl etcd"

# Writes the wrapper module for kube-apiserver and kubectl into $1.
write_kube_module() {
  local dir="$1" gomod="$2" staging_version="$3"
  mkdir -p "$dir"
  {
    echo "// Generated by hack/testbin.sh: builds kube-apiserver and kubectl from k8s.io/kubernetes $K8S_VERSION."
    echo "module connector-controller.testbin/kube"
    echo
    grep -E '^go [0-9]' "$gomod"
    grep -E '^godebug ' "$gomod" || true
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "tool ("
    echo "	k8s.io/kubernetes/cmd/kube-apiserver"
    echo "	k8s.io/kubernetes/cmd/kubectl"
    echo ")"
    echo
    echo "// Every staging module k8s.io/kubernetes replaces with ./staging/..., at its published version."
    echo "replace ("
    awk -v ver="$staging_version" '
      $2 == "=>" && $1 ~ /^k8s\.io\// && $3 ~ /^\.\/staging\// { printf "\t%s => %s %s\n", $1, $1, ver; n++ }
      END { if (n == 0) exit 3 }
    ' "$gomod" || die "found no staging replace directives in $gomod"
    echo ")"
  } >"$dir/go.mod"
}

write_etcd_module() {
  local dir="$1"
  mkdir -p "$dir"
  cat >"$dir/go.mod" <<EOF
// Generated by hack/testbin.sh: builds etcd $ETCD_VERSION.
module connector-controller.testbin/etcd

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
  cat >"$dir/main.go" <<'EOF'
// Generated by hack/testbin.sh: the same main as go.etcd.io/etcd/v3 (etcd's root module).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
EOF
}

# Builds kube-apiserver, kubectl and etcd into $1.
recipe_kube() {
  local out="$1"
  [[ "$K8S_VERSION" =~ ^v1\.[0-9]+\.[0-9]+$ ]] || die "K8S_VERSION must look like v1.X.Y, got '$K8S_VERSION'"
  local k8s_minor="${K8S_VERSION#v1.}"
  k8s_minor="${k8s_minor%%.*}"
  local staging_version="v0.${K8S_VERSION#v1.}"

  log "fetching k8s.io/kubernetes@$K8S_VERSION's go.mod from $("$GO_CMD" env GOPROXY)"
  local gomod info build_date
  gomod="$(module_field GoMod "k8s.io/kubernetes@$K8S_VERSION")"
  if [ -z "$gomod" ] || [ ! -f "$gomod" ]; then
    die "could not download k8s.io/kubernetes@$K8S_VERSION from the Go module proxy ($("$GO_CMD" env GOPROXY));
  check network access to the proxy, or set KUBEBUILDER_ASSETS to a directory with kube-apiserver, kubectl and etcd"
  fi
  info="${gomod%.mod}.info"
  build_date="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$info" 2>/dev/null || true)"
  build_date="${build_date:-1970-01-01T00:00:00Z}"

  local src="$TESTBIN_CACHE/src"
  local kmod="$src/k8s-$K8S_VERSION" emod="$src/etcd-$ETCD_VERSION"
  write_kube_module "$kmod" "$gomod" "$staging_version"
  write_etcd_module "$emod"

  local ldflags="-s -w" key val
  for key in gitVersion gitMajor gitMinor gitTreeState buildDate; do
    case "$key" in
      gitVersion) val="$K8S_VERSION" ;;
      gitMajor) val="1" ;;
      gitMinor) val="$k8s_minor" ;;
      gitTreeState) val="clean" ;;
      buildDate) val="$build_date" ;;
    esac
    ldflags+=" -X k8s.io/component-base/version.$key=$val -X k8s.io/client-go/pkg/version.$key=$val"
  done

  log "resolving the kube wrapper module in $kmod"
  (cd "$kmod" && "$GO_CMD" mod tidy >&2) || die "go mod tidy failed for k8s.io/kubernetes@$K8S_VERSION (see above)"
  log "building kube-apiserver and kubectl $K8S_VERSION (the first build takes a long while)"
  (cd "$kmod" && "$GO_CMD" build -trimpath -ldflags "$ldflags" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl >&2) ||
    die "building kube-apiserver/kubectl $K8S_VERSION failed (see above); set KUBEBUILDER_ASSETS to use ready binaries instead"

  log "resolving and building etcd $ETCD_VERSION in $emod"
  (cd "$emod" && "$GO_CMD" mod tidy >&2 && "$GO_CMD" build -trimpath -ldflags "-s -w" -o "$out/etcd" . >&2) ||
    die "building etcd $ETCD_VERSION failed (see above); set KUBEBUILDER_ASSETS to use ready binaries instead"
  "$out/kube-apiserver" --version >&2 || die "the built kube-apiserver does not run"
  "$out/etcd" --version >&2 || die "the built etcd does not run"
}

target_kube() {
  if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
    # shellcheck disable=SC2086
    given_dir KUBEBUILDER_ASSETS "$KUBEBUILDER_ASSETS" $KUBE_BINARIES
    return 0
  fi
  local dest="$TESTBIN_CACHE/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
  ensure_built .lock "$dest" "$KUBE_BINARIES" \
    "kube-apiserver/kubectl/etcd ($K8S_VERSION, etcd $ETCD_VERSION)" recipe_kube
  echo "$dest"
}

# ---------------------------------------------------------------------------------------
# target helm: helm v3 (hack/testbin.sh helm), for the chart tests
# ---------------------------------------------------------------------------------------
# Built from helm.sh/helm/v3/cmd/helm at $HELM_VERSION through a generated wrapper module
# (helm's go.mod has no replace directives, so requiring it is enough), with the ldflags
# helm's own Makefile sets (version, tree state, and the Kubernetes version that
# `helm lint`/`helm template` assume, taken from helm's k8s.io/client-go requirement).
# Cached in $TESTBIN_CACHE/helm-$HELM_VERSION. When TESTBIN_HELM_DIR is set it must be a
# directory holding a ready `helm`; then nothing is built.
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
TARGETS+=(helm)

# Builds helm into $1.
recipe_helm() {
  local out="$1"
  [[ "$HELM_VERSION" =~ ^v3\.[0-9]+\.[0-9]+$ ]] || die "HELM_VERSION must look like v3.X.Y, got '$HELM_VERSION'"
  log "fetching helm.sh/helm/v3@$HELM_VERSION's go.mod from $("$GO_CMD" env GOPROXY)"
  local gomod
  gomod="$(module_field GoMod "helm.sh/helm/v3@$HELM_VERSION")"
  [ -n "$gomod" ] && [ -f "$gomod" ] ||
    die "could not download helm.sh/helm/v3@$HELM_VERSION from the Go module proxy ($("$GO_CMD" env GOPROXY));
  check network access to the proxy, or set TESTBIN_HELM_DIR to a directory with a helm binary"
  # helm's Makefile: Kubernetes major/minor = client-go's v0.X.Y => 1.X
  local client_go k8s_minor
  client_go="$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$gomod")"
  [[ "$client_go" =~ ^v0\.[0-9]+\.[0-9]+$ ]] || die "could not find helm's k8s.io/client-go version in $gomod"
  k8s_minor="${client_go#v0.}"
  k8s_minor="${k8s_minor%%.*}"

  local hmod="$TESTBIN_CACHE/src/helm-$HELM_VERSION"
  mkdir -p "$hmod"
  {
    echo "// Generated by hack/testbin.sh: builds helm $HELM_VERSION."
    echo "module connector-controller.testbin/helm"
    echo
    grep -E '^go [0-9]' "$gomod"
    echo
    echo "require helm.sh/helm/v3 $HELM_VERSION"
    echo
    echo "tool helm.sh/helm/v3/cmd/helm"
  } >"$hmod/go.mod"

  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  local pkg
  for pkg in pkg/lint/rules pkg/chartutil; do
    ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$k8s_minor"
  done

  log "resolving and building helm $HELM_VERSION in $hmod (takes a few minutes the first time)"
  (cd "$hmod" && "$GO_CMD" mod tidy >&2 &&
    "$GO_CMD" build -trimpath -ldflags "$ldflags" -o "$out/helm" helm.sh/helm/v3/cmd/helm >&2) ||
    die "building helm $HELM_VERSION failed (see above); set TESTBIN_HELM_DIR to use a ready helm instead"
  "$out/helm" version >&2 || die "the built helm does not run"
}

target_helm() {
  if [ -n "${TESTBIN_HELM_DIR:-}" ]; then
    given_dir TESTBIN_HELM_DIR "$TESTBIN_HELM_DIR" helm
    return 0
  fi
  local dest="$TESTBIN_CACHE/helm-$HELM_VERSION"
  ensure_built .helm.lock "$dest" helm "helm $HELM_VERSION" recipe_helm
  echo "$dest"
}

# ---------------------------------------------------------------------------------------
# target openbao: a Vault-API server for the secrets tests (hack/testbin.sh openbao)
# ---------------------------------------------------------------------------------------
# OpenBao: built from github.com/openbao/openbao/v2 at $OPENBAO_VERSION (its main package is
# the module root) through a generated wrapper module that copies its go.mod requirements and
# go.sum, requires it, and replaces each module it replaces with a local directory (api/v2,
# sdk/v2, api/auth/*/v2) by a published version: the pseudo-version of the release's own
# commit when the proxy serves it (the exact tree the release was built from), else the
# version the same go.mod requires. Output:
# $TESTBIN_CACHE/openbao-$OPENBAO_VERSION/bao.
#
# Fallback: when the module proxy does not serve OpenBao (the one this project reaches
# answers 403 "not available" for every version of github.com/openbao/openbao/v2), the same
# recipe builds HashiCorp Vault at $VAULT_VERSION, v1.14.1 by default: the last release under
# the MPL-2.0 (later ones are under the BUSL, and OpenBao itself is a fork of this line), which
# serves the same API (KV v1/v2, Kubernetes and AppRole auth, file audit, seal/unseal).
# Output: $TESTBIN_CACHE/vault-$VAULT_VERSION/vault. OPENBAO_FALLBACK=0 turns the fallback off.
# Both are built with CGO_ENABLED=0 and no UI. When OPENBAO_BIN is set it must be a ready bao
# or vault binary; then nothing is built and its directory is printed.
OPENBAO_VERSION="${OPENBAO_VERSION:-v2.5.1}"
VAULT_VERSION="${VAULT_VERSION:-v1.14.1}"
TARGETS+=(openbao)

# Prints "module required-version" for each module that go.mod $1 replaces with a local
# directory (./api, ./sdk, ...), the version taken from the same go.mod's requirements.
local_replaces() {
  awk '
    FNR == NR {
      line = $0; sub(/^require[ \t]+/, "", line); sub(/^[ \t]+/, "", line)
      n = split(line, f, /[ \t]+/)
      if (n >= 2 && f[2] ~ /^v[0-9]/) ver[f[1]] = f[2]
      next
    }
    {
      line = $0; sub(/^replace[ \t]+/, "", line); sub(/^[ \t]+/, "", line)
      n = split(line, f, /[ \t]+/)
      if (n >= 3 && f[2] == "=>" && f[3] ~ /^\.\.?\//) {
        if (!(f[1] in ver)) { missing = missing " " f[1]; next }
        print f[1], ver[f[1]]
      }
    }
    END { if (missing != "") { print "no required version for:" missing > "/dev/stderr"; exit 3 } }
  ' "$1" "$1"
}

# The version to use for submodule $1 (required at $2) of a root module tagged at commit
# time $3 (YYYYMMDDhhmmss) and hash $4: the pseudo-version of that same commit when the proxy
# serves it (the tree the release was built from), else the required version.
submodule_version() {
  local mod="$1" req="$2" time="$3" hash="$4" base cand
  if [[ "$req" =~ ^(v[0-9]+\.[0-9]+\.[0-9]+-0)\.[0-9]{14}-[0-9a-f]{12}$ ]]; then
    base="${BASH_REMATCH[1]}"
  elif [[ "$req" =~ ^v([0-9]+)\.([0-9]+)\.([0-9]+)$ ]]; then
    base="v${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.$((BASH_REMATCH[3] + 1))-0"
  fi
  if [ -n "${base:-}" ] && [ -n "$time" ] && [ -n "$hash" ]; then
    cand="$base.$time-${hash:0:12}"
    if [ -n "$(module_dir "$mod" "$cand")" ]; then
      echo "$cand"
      return 0
    fi
  fi
  echo "$req"
}

# Writes into $1 a wrapper module for root module $2 at $3 from its module directory $4
# (go.mod, go.sum) and its .info file $5 (commit time and hash).
write_server_module() {
  local dir="$1" root="$2" version="$3" src="$4" info="$5"
  local gomod="$src/go.mod" time hash pairs mod req
  time="$(sed -n 's/.*"Time": *"\([0-9-]*\)T\([0-9:]*\)Z".*/\1\2/p' "$info" | tr -d ':-')"
  hash="$(sed -n 's/.*"Hash": *"\([0-9a-f]*\)".*/\1/p' "$info")"
  pairs="$(local_replaces "$gomod")" || die "could not map the local replace directives of $root $version"
  mkdir -p "$dir"
  {
    echo "// Generated by hack/testbin.sh: builds $root $version."
    echo "module connector-controller.testbin/$(basename "$dir")"
    echo
    # Everything but the module line, the replace directives and the toolchain line.
    awk '
      /^module[ \t]/ { next }
      /^toolchain[ \t]/ { next }
      /^replace[ \t]*\($/ { inrep = 1; next }
      inrep && /^\)/ { inrep = 0; next }
      inrep { next }
      /^replace[ \t]/ { next }
      { print }
    ' "$gomod"
    echo
    echo "require $root $version"
    echo
    echo "// The modules $root replaces with its own subdirectories, at published versions."
    echo "replace ("
    while read -r mod req; do
      [ -n "$mod" ] || continue
      printf '\t%s => %s %s\n' "$mod" "$mod" "$(submodule_version "$mod" "$req" "$time" "$hash")"
    done <<<"$pairs"
    echo ")"
  } >"$dir/go.mod"
  if [ -f "$src/go.sum" ]; then cp "$src/go.sum" "$dir/go.sum" && chmod 644 "$dir/go.sum"; fi
}

# Downloads $1@$2 into the module cache; prints its directory (empty when unavailable).
module_dir() {
  module_field Dir "$1@$2"
}

# recipe_server <out> <root module> <version> <binary name>: builds the server into <out>;
# returns 2 when the proxy does not serve the module.
recipe_server() {
  local out="$1" root="$2" version="$3" bin="$4"
  log "fetching $root@$version from $("$GO_CMD" env GOPROXY)"
  local src info
  src="$(module_dir "$root" "$version")"
  info="$(module_field Info "$root@$version")"
  if [ -z "$src" ] || [ ! -f "$src/go.mod" ]; then
    log "the module proxy does not serve $root@$version:"
    GOFLAGS=-mod=mod "$GO_CMD" mod download "$root@$version" 2>&1 | sed 's/^/testbin:   /' >&2 || true
    return 2
  fi
  local wmod="$TESTBIN_CACHE/src/$bin-$version"
  write_server_module "$wmod" "$root" "$version" "$src" "$info"
  log "building $bin from $root $version in $wmod (a large build: 10-20 minutes the first time on 2 cores)"
  (cd "$wmod" && "$GO_CMD" build -trimpath -ldflags "-s -w" -o "$out/$bin" "$root" >&2) ||
    die "building $root $version failed (see above); set OPENBAO_BIN to a ready bao or vault binary instead"
  "$out/$bin" version >&2 || die "the built $bin does not run"
}

target_openbao() {
  if [ -n "${OPENBAO_BIN:-}" ]; then
    [ -x "$OPENBAO_BIN" ] || die "OPENBAO_BIN=$OPENBAO_BIN is not an executable file"
    dirname "$OPENBAO_BIN"
    return 0
  fi
  local bao_dest="$TESTBIN_CACHE/openbao-$OPENBAO_VERSION"
  local vault_dest="$TESTBIN_CACHE/vault-$VAULT_VERSION"
  local fallback="${OPENBAO_FALLBACK:-1}" rc=0
  # A fallback built before: the proxy is not asked again for OpenBao.
  if [ ! -x "$bao_dest/bao" ] && [ "$fallback" != 0 ] && [ -x "$vault_dest/vault" ]; then
    echo "$vault_dest"
    return 0
  fi
  ensure_built .openbao.lock "$bao_dest" bao "OpenBao $OPENBAO_VERSION" \
    recipe_server github.com/openbao/openbao/v2 "$OPENBAO_VERSION" bao || rc=$?
  if [ "$rc" = 0 ]; then
    echo "$bao_dest"
    return 0
  fi
  [ "$rc" = 2 ] || die "building OpenBao $OPENBAO_VERSION failed (exit $rc)"
  [ "$fallback" != 0 ] ||
    die "OpenBao $OPENBAO_VERSION is not available from the Go module proxy and OPENBAO_FALLBACK=0;
  set OPENBAO_BIN to a ready bao binary"
  log "falling back to HashiCorp Vault $VAULT_VERSION (MPL-2.0), which serves the same API"
  rc=0
  ensure_built .openbao.lock "$vault_dest" vault "Vault $VAULT_VERSION" \
    recipe_server github.com/hashicorp/vault "$VAULT_VERSION" vault || rc=$?
  [ "$rc" = 0 ] || die "neither OpenBao $OPENBAO_VERSION nor Vault $VAULT_VERSION is available from the
  Go module proxy; set OPENBAO_BIN to a ready bao or vault binary"
  echo "$vault_dest"
}

main() {
  local target="${1:-kube}"
  case " ${TARGETS[*]} " in
    *" $target "*) "target_$target" ;;
    *) die "unknown target '$target' (known: ${TARGETS[*]})" ;;
  esac
}

main "$@"
