#!/usr/bin/env bash
# Debian packages that tests use as real components. Idempotent: installs only what is missing.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)   # Playwright drives it (UI tests)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)     # builds the labextension
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)  # Spark engine tests
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)  # team repository tests
# A real container engine (Podman's Docker API, with runc) and a base image made by
# debootstrap: the image, container-target and Kubernetes tests (tests/_containers.py).
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || missing+=(runc)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)  # --push tests

if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "Installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
