#!/usr/bin/env bash
# Installs the cluster's Debian prerequisites that are missing (apt-get update only then).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

# package -> a file it installs (a package counts as present when its file is).
# netavark makes podman/buildah use NETAVARK-* firewall chains instead of CNI-* ones, so that
# down.sh's sweep of CNI-* chains never touches an image build running at the same time.
declare -A PROBE=(
  [containerd]=/usr/bin/containerd
  [runc]=/usr/sbin/runc
  [containernetworking-plugins]=$CNI_BIN_DIR/bridge
  [podman]=/usr/bin/podman
  [buildah]=/usr/bin/buildah
  [netavark]=/usr/lib/podman/netavark
  [aardvark-dns]=/usr/lib/podman/aardvark-dns
  [debootstrap]=/usr/sbin/debootstrap
  [iptables]=/usr/sbin/iptables
  [conntrack]=/usr/sbin/conntrack
  [openssl]=/usr/bin/openssl
  [socat]=/usr/bin/socat
  [curl]=/usr/bin/curl
  [ca-certificates]=/etc/ssl/certs/ca-certificates.crt
  [iproute2]=/usr/bin/ip
  [procps]=/usr/bin/pgrep
  [util-linux]=/usr/bin/setsid
)

step "Debian prerequisites"
missing=()
for pkg in $(printf '%s\n' "${!PROBE[@]}" | sort); do
  if [[ -e ${PROBE[$pkg]} ]]; then
    log "present: $pkg"
  else
    missing+=("$pkg")
  fi
done
if ((${#missing[@]} == 0)); then
  log "all prerequisites present"
  exit 0
fi

log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q || die "apt-get update failed; cannot install: ${missing[*]}"
# Recommends would add fuse-overlayfs, slirp4netns, dbus: rootless pieces that root does not need.
apt-get install -y -q --no-install-recommends "${missing[@]}" ||
  die "apt-get install failed for: ${missing[*]}"
for pkg in "${missing[@]}"; do
  [[ -e ${PROBE[$pkg]} ]] || die "prerequisite $pkg installed but ${PROBE[$pkg]} is missing"
done
log "installed: ${missing[*]}"
