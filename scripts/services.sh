#!/usr/bin/env bash
# Local services for the integration tests.
#
#   scripts/services.sh up       install what is missing, start everything, write services.env
#   scripts/services.sh down     stop what `up` started (data is kept)
#   scripts/services.sh status   one line per service
#
# Services (all bound to loopback, state under ${MAO_RUN_DIR:-<repo>/.run}):
#   docker    Docker Engine on unix://$RUN/docker.sock, its default network on a bridge of
#             its own (interface mao-br-<hash>, subnet $MAO_BRIDGE_CIDR, default 172.31.77.1/24;
#             no iptables: containers reach neither the outside nor the host's loopback)
#   swarm     a second Docker Engine on unix://$RUN/swarm.sock, a one-node Swarm manager (API on
#             127.0.0.1:12377, gossip on 127.0.0.1:7946), no default bridge, no routing mesh
#             (ingress removed), docker_gwbridge on an interface and subnet of its own
#             (mao-sg-<hash>, $MAO_SWARM_GW_CIDR, default 10.213.7.1/24)
#   podman    Podman's Docker-compatible API on unix://$RUN/podman.sock (optional); its
#             configuration (runc, cgroupfs) is $RUN/podman/containers.conf, given to every
#             podman this script runs as CONTAINERS_CONF (/etc/containers is left alone)
#   postgres  PostgreSQL 15 on 127.0.0.1:54329, trust auth, database mao_test
#   sshd      git over SSH on 127.0.0.1:2222, bare repositories in $RUN/git-srv
#   slurm     a one-node Slurm 22.05 cluster (slurmctld on port $MAO_SLURM_PORT, default 16817,
#             slurmd on the next port: both on every interface, Slurm has no bind address, and
#             munge authenticates each request; node `localhost`, partition `debug`), its own
#             munged on a socket of its own, no slurmdbd: job records in $RUN/slurm/jobcomp.txt
#             (sacct -c); clients need SLURM_CONF=$RUN/slurm/slurm.conf (MAO_TEST_SLURM_CONF)
#   etcd      binaries only: the tests start their own clusters
#   debootstrap  for the deployment tests (tests/deploy), which make a Debian base image
#   chromium  Debian's browser at /usr/bin/chromium, for the dashboard's browser tests (tests/ui)
#
# All three engines get the image mao/busybox:local, imported from a busybox-static rootfs.
# After `up`, `source $RUN/services.env` exports the MAO_TEST_* variables.
# Needs root (apt-get, dockerd). Safe to run repeatedly: running services are reused.
#
#   scripts/services.sh up docker   only the Docker Engine and its base image (for scripts/demo);
#                                   prints the engine's DOCKER_HOST
#   scripts/services.sh image       import mao/busybox:local into the engine at DOCKER_HOST (the
#                                   caller's engine; Docker's default one when DOCKER_HOST is unset)
#
# What `up` changes on the machine besides $RUN:
#   - installs with apt-get what is missing: docker.io docker-compose etcd-server etcd-client
#     busybox-static openssh-server openssh-client git debootstrap chromium podman runc
#     (postgresql-client without psql, iproute2 without ip) and their dependencies; their
#     maintainer scripts are kept from starting daemons during the install (a temporary
#     /usr/sbin/policy-rc.d), but the packages' own system services (docker, etcd, ssh on
#     port 22) are enabled as the packages install them and start at the next boot on a
#     machine run by systemd;
#   - creates the OS user postgres when it is missing, and /run/sshd;
#   - adds the bridge interface mao-br-<hash> with $MAO_BRIDGE_CIDR, and the swarm engine's
#     mao-sg-<hash> with $MAO_SWARM_GW_CIDR (both removed by `down`);
#   - keeps short-path state in /tmp/mao-dexec-<hash>, /tmp/mao-sexec-<hash>, /tmp/mao-prun-<hash> (and
#     /tmp/mao-sock-<hash>, /tmp/mao-munge-<hash>, /var/tmp/mao-pg-<hash> when $RUN is too long or unreachable for postgres);
#   - adds .run/ to the checkout's .gitignore.
#
# Optional overrides: MAO_RUN_DIR, MAO_PG_PORT (54329), MAO_SSH_PORT (2222),
#                     MAO_BRIDGE_CIDR (172.31.77.1/24: the bridge's address and subnet),
#                     MAO_SWARM_PORT (12377), MAO_SWARM_GW_CIDR (10.213.7.1/24: docker_gwbridge's),
#                     MAO_SLURM_PORT (16817: slurmctld's; slurmd takes the next one).
set -euo pipefail

SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/$(basename "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd -P)
RUN=${MAO_RUN_DIR:-$REPO/.run}
mkdir -p "$RUN"
RUN=$(cd "$RUN" && pwd -P)
HASH=$(printf '%s' "$RUN" | sha256sum | cut -c1-8)

LOGS=$RUN/logs
ENV_FILE=$RUN/services.env
IMAGE=mao/busybox:local
IMAGE_LABEL=org.mao.rootfs-sha256
ROOTFS_TAR=$RUN/images/busybox-rootfs.tar
# wget and nc let tests probe what a step can reach (Debian's static busybox 1.35 crashes on
# `wget -T`: use `timeout N wget` instead).
APPLETS=(sh ls cat echo date sleep mkdir cp mv rm env id true false wc sha256sum chown
         touch printf grep head tail test seq wget nc timeout)

# Unix socket paths are limited to ~108 bytes: fall back to a short directory.
SOCK_DIR=$RUN
if (( ${#RUN} > 90 )); then SOCK_DIR=/tmp/mao-sock-$HASH; fi

DOCKER_SOCK=$SOCK_DIR/docker.sock
DOCKER_DIR=$RUN/docker
DOCKER_PIDFILE=$DOCKER_DIR/dockerd.pid
DOCKER_EXEC_ROOT=/tmp/mao-dexec-$HASH   # runc/containerd state: must be a short path
DOCKER_LOG=$LOGS/dockerd.log
BRIDGE_CIDR=${MAO_BRIDGE_CIDR:-172.31.77.1/24}
BRIDGE_IF=mao-br-${HASH:0:6}            # interface names are limited to 15 bytes

SWARM_SOCK=$SOCK_DIR/swarm.sock
SWARM_DIR=$RUN/swarm
SWARM_PIDFILE=$SWARM_DIR/dockerd.pid
SWARM_EXEC_ROOT=/tmp/mao-sexec-$HASH
SWARM_LOG=$LOGS/swarm-dockerd.log
SWARM_ADDR=127.0.0.1:${MAO_SWARM_PORT:-12377}
SWARM_GW_CIDR=${MAO_SWARM_GW_CIDR:-10.213.7.1/24}
SWARM_GW_IF=mao-sg-${HASH:0:6}

PODMAN_SOCK=$SOCK_DIR/podman.sock
PODMAN_DIR=$RUN/podman
PODMAN_PIDFILE=$PODMAN_DIR/podman.pid
PODMAN_RUNROOT=/tmp/mao-prun-$HASH
PODMAN_LOG=$LOGS/podman.log
PODMAN_CONF=$PODMAN_DIR/containers.conf       # podman reads this one only (not /etc/containers)
PODMAN_CONF_BODY='[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"'

PG_PORT=${MAO_PG_PORT:-54329}
PG_DB=mao_test
PG_DIR=$RUN/pg                          # may move to /var/tmp if postgres cannot reach $RUN
SSH_PORT=${MAO_SSH_PORT:-2222}
SLURM_DIR=$RUN/slurm
SLURM_CONF_FILE=$SLURM_DIR/slurm.conf
SLURM_PORT=${MAO_SLURM_PORT:-16817}
MUNGE_DIR=$SLURM_DIR/munge               # munged wants its socket's directory a+x
if (( ${#MUNGE_DIR} > 80 )); then MUNGE_DIR=/tmp/mao-munge-$HASH; fi
SSH_DIR=$RUN/ssh
SSH_LOG=$LOGS/sshd.log
GIT_SRV=$RUN/git-srv

# The services below are this run directory's own engines, never the caller's: its engine
# settings are kept aside for `image`, which works on the caller's engine.
CALLER_DOCKER_ENV=()
for _var in DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH; do
    [[ -n ${!_var:-} ]] && CALLER_DOCKER_ENV+=("$_var=${!_var}")
done
unset _var DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH CONTAINER_HOST CONTAINERS_CONF

# ---------------------------------------------------------------------------- helpers

log()  { printf '[services] %s\n' "$*" >&2; }
warn() { printf '[services] WARNING: %s\n' "$*" >&2; }
die()  { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

# fail_with_log MESSAGE LOGFILE: print the end of a log and exit non-zero.
fail_with_log() {
    printf '[services] ERROR: %s\n' "$1" >&2
    if [[ -f $2 ]]; then
        printf '[services] ---- last 30 lines of %s ----\n' "$2" >&2
        tail -n 30 "$2" >&2 || true
        printf '[services] ----\n' >&2
    fi
    exit 1
}

# pid_alive PIDFILE COMM: print the pid if the file names a live process called COMM*.
pid_alive() {
    local p
    [[ -r $1 ]] || return 1
    p=$(head -n1 "$1" 2>/dev/null | tr -dc '0-9')
    [[ -n $p ]] && kill -0 "$p" 2>/dev/null || return 1
    [[ $(cat "/proc/$p/comm" 2>/dev/null) == "$2"* ]] || return 1
    printf '%s\n' "$p"
}

# wait_until SECONDS CMD...: poll CMD until it succeeds.
wait_until() {
    local deadline=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        (( $(date +%s) < deadline )) || return 1
        sleep 0.3
    done
}

# stop_pid LABEL PIDFILE COMM [SECONDS]: SIGTERM, then SIGKILL after a grace period.
stop_pid() {
    local label=$1 pidfile=$2 comm=$3 grace=${4:-30} p
    if ! p=$(pid_alive "$pidfile" "$comm"); then
        log "$label: not running"
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$p" 2>/dev/null || true
    if ! wait_until "$grace" proc_gone "$p"; then
        warn "$label: pid $p ignored SIGTERM for ${grace}s, sending SIGKILL"
        kill -KILL "$p" 2>/dev/null || true
        wait_until 10 proc_gone "$p" || true
    fi
    rm -f "$pidfile"
    log "$label: stopped (pid $p)"
}
proc_gone() { ! kill -0 "$1" 2>/dev/null; }

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

start_marker() { mkdir -p "$(dirname "$1")"; printf '\n==== %s start %s ====\n' "$2" "$(date -Is)" >>"$1"; }

require_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (apt-get, dockerd, sshd)"; }

# ---------------------------------------------------------------------------- packages

APT_UPDATED=0
REQUIRED_PKGS=(docker.io docker-compose etcd-server etcd-client busybox-static openssh-server openssh-client git
               debootstrap git-annex datalad slurmctld slurmd slurm-client munge)
OPTIONAL_PKGS=(podman runc)

pkg_installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == 'install ok installed' ]]; }

# apt_install PKG...: install the missing ones; returns non-zero on failure (never exits).
apt_install() {
    local missing=() p rc=0 made_policy=0
    for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
    (( ${#missing[@]} )) || return 0
    command -v apt-get >/dev/null || { warn "apt-get not found, cannot install: ${missing[*]}"; return 1; }
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local apt_opts=(-q -o DPkg::Lock::Timeout=600)
    if (( APT_UPDATED == 0 )); then
        apt-get "${apt_opts[@]}" update </dev/null || { warn "apt-get update failed"; return 1; }
        APT_UPDATED=1
    fi
    # Keep package maintainer scripts from starting daemons (dockerd, etcd on :2379, sshd on :22).
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1
    fi
    apt-get "${apt_opts[@]}" install -y \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" </dev/null || rc=$?
    (( made_policy )) && rm -f /usr/sbin/policy-rc.d
    return "$rc"
}

install_packages() {
    local required=("${REQUIRED_PKGS[@]}")
    command -v psql >/dev/null || required+=(postgresql-client)
    apt_install "${required[@]}" || die "could not install required packages: ${required[*]}"
    browser_check
    if ! apt_install "${OPTIONAL_PKGS[@]}"; then
        warn "podman could not be installed; continuing without it"
    fi
}

# browser_check: Debian's Chromium for the dashboard's browser tests (Playwright drives it;
# its own browser download cannot work here). Installed only when missing.
browser_check() {
    if [[ -x /usr/bin/chromium ]]; then
        log "chromium: /usr/bin/chromium is installed (browser tests)"
        return 0
    fi
    log "chromium: /usr/bin/chromium is missing; installing Debian's chromium for the browser tests (tests/ui)"
    apt_install chromium || die "could not install chromium (needed by the browser tests in tests/ui)"
}

# ---------------------------------------------------------------------------- image

build_rootfs() {
    local busybox='' tmp a c out
    for c in /bin/busybox /usr/bin/busybox "$(command -v busybox || true)"; do
        [[ -n $c && -x $c ]] || continue
        out=$(LC_ALL=C ldd "$c" 2>&1 || true)
        if [[ $out == *'not a dynamic executable'* ]]; then busybox=$c; break; fi
    done
    [[ -n $busybox ]] || die "no statically linked busybox found (package busybox-static)"
    mkdir -p "$RUN/images"
    tmp=$(mktemp -d "$RUN/images/rootfs.XXXXXX")
    mkdir -p "$tmp/bin" "$tmp/etc" "$tmp/root" "$tmp/tmp" "$tmp/usr/src/app/data"
    chmod 1777 "$tmp/tmp"
    cp "$busybox" "$tmp/bin/busybox"
    for a in "${APPLETS[@]}"; do ln -sf busybox "$tmp/bin/$a"; done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$tmp/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$tmp/etc/group"
    # Deterministic tarball: same content => same checksum => no re-import.
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
        -C "$tmp" -cf "$ROOTFS_TAR.new" .
    mv -f "$ROOTFS_TAR.new" "$ROOTFS_TAR"
    rm -rf "$tmp"
}

# ensure_image LABEL DOCKER_HOST: import $ROOTFS_TAR as $IMAGE unless already there; an empty
# DOCKER_HOST is the docker command's own choice (its DOCKER_HOST, DOCKER_CONTEXT or default).
ensure_image() {
    local label=$1 host=$2 want have
    local dk=(docker)
    [[ -n $host ]] && dk=(env "DOCKER_HOST=$host" docker)
    want=$(sha256sum "$ROOTFS_TAR" | cut -c1-64)
    have=$("${dk[@]}" image inspect -f "{{index .Config.Labels \"$IMAGE_LABEL\"}}" "$IMAGE" 2>/dev/null || true)
    if [[ $have == "$want" ]]; then
        log "$label: image $IMAGE present"
        return 0
    fi
    "${dk[@]}" import \
        -c "LABEL $IMAGE_LABEL=$want" -c 'CMD ["sh"]' \
        "$ROOTFS_TAR" "$IMAGE" >/dev/null || return 1
    log "$label: imported $IMAGE"
}

# ---------------------------------------------------------------------------- docker

docker_answers() { DOCKER_HOST=unix://$DOCKER_SOCK timeout 10 docker version >/dev/null 2>&1; }

# bridge_up: the engine's default network, on an interface of this run directory's own,
# so that engines of several run directories do not fight over docker0.
bridge_up() {
    command -v ip >/dev/null || apt_install iproute2 || die "docker: the ip command (iproute2) is missing"
    # a bridge of another run directory left with our address by an engine that is gone
    # (a machine whose processes were ended without `down`) would shadow ours: remove it
    local other
    for other in $(ip -o -4 addr show | awk -v cidr="$BRIDGE_CIDR" '$4 == cidr && $2 ~ /^mao-br-/ {print $2}'); do
        [[ $other == "$BRIDGE_IF" ]] && continue
        if pgrep -f -- "--bridge=$other" >/dev/null 2>&1; then
            die "docker: $other (an engine of another run directory) holds $BRIDGE_CIDR; set MAO_BRIDGE_CIDR"
        fi
        ip link delete "$other" && log "docker: removed the stale bridge $other that held $BRIDGE_CIDR"
    done
    if ! ip link show "$BRIDGE_IF" >/dev/null 2>&1; then
        ip link add name "$BRIDGE_IF" type bridge || die "docker: cannot create the bridge $BRIDGE_IF"
    fi
    if ! ip -o -4 addr show dev "$BRIDGE_IF" | grep -qF " $BRIDGE_CIDR "; then
        ip addr flush dev "$BRIDGE_IF"
        ip addr add "$BRIDGE_CIDR" dev "$BRIDGE_IF" \
            || die "docker: cannot give $BRIDGE_IF the address $BRIDGE_CIDR (taken? set MAO_BRIDGE_CIDR)"
    fi
    ip link set "$BRIDGE_IF" up
}

bridge_down() {
    command -v ip >/dev/null || return 0
    if ip link show "$BRIDGE_IF" >/dev/null 2>&1; then
        ip link delete "$BRIDGE_IF" && log "docker: removed the bridge $BRIDGE_IF" \
            || warn "docker: could not remove the bridge $BRIDGE_IF"
    fi
}

# start_dockerd LABEL SOCK DIR EXEC_ROOT LOG ANSWERS [DOCKERD_ARGS...]: start a private dockerd
# (data in DIR/data, pid file DIR/dockerd.pid, configuration DIR/daemon.json) in a session of
# its own and wait until the command ANSWERS succeeds; exits with the end of LOG if it does not.
start_dockerd() {
    local label=$1 sock=$2 dir=$3 exec_root=$4 logfile=$5 answers=$6 p
    shift 6
    mkdir -p "$dir/data" "$exec_root" "$(dirname "$sock")"
    [[ -f $dir/daemon.json ]] || printf '{}\n' >"$dir/daemon.json"
    rm -f "$sock" "$dir/dockerd.pid"
    start_marker "$logfile" dockerd
    setsid dockerd \
        --config-file "$dir/daemon.json" \
        --host "unix://$sock" \
        --data-root "$dir/data" \
        --exec-root "$exec_root" \
        --pidfile "$dir/dockerd.pid" \
        --default-ulimit nofile=1024:1024 --shutdown-timeout=5 \
        "$@" \
        </dev/null >>"$logfile" 2>&1 9>&- &
    p=$!
    local deadline=$(( $(date +%s) + 60 ))
    until "$answers"; do
        kill -0 "$p" 2>/dev/null || fail_with_log "$label: dockerd exited during start-up" "$logfile"
        (( $(date +%s) < deadline )) || { kill -TERM "$p" 2>/dev/null || true
            fail_with_log "$label: no answer on $sock after 60s" "$logfile"; }
        sleep 0.3
    done
    log "$label: started (pid $p)"
}

docker_up() {
    local p
    if p=$(pid_alive "$DOCKER_PIDFILE" dockerd); then
        wait_until 60 docker_answers \
            || fail_with_log "docker: dockerd (pid $p) runs but $DOCKER_SOCK does not answer" "$DOCKER_LOG"
        log "docker: running (pid $p)"
    elif docker_answers; then
        warn "docker: $DOCKER_SOCK answers but $DOCKER_PIDFILE names no dockerd; reusing it"
    else
        bridge_up
        start_dockerd docker "$DOCKER_SOCK" "$DOCKER_DIR" "$DOCKER_EXEC_ROOT" "$DOCKER_LOG" docker_answers \
            --iptables=false --ip-forward=false --bridge="$BRIDGE_IF"
    fi
    ensure_image docker "unix://$DOCKER_SOCK" || fail_with_log "docker: importing $IMAGE failed" "$DOCKER_LOG"
}

# ---------------------------------------------------------------------------- swarm

swarm_answers() { DOCKER_HOST=unix://$SWARM_SOCK timeout 10 docker version >/dev/null 2>&1; }
sw() { DOCKER_HOST=unix://$SWARM_SOCK timeout 60 docker "$@"; }
swarm_state() { sw info -f '{{.Swarm.LocalNodeState}}' 2>/dev/null || true; }
swarm_has_ingress() { sw network inspect ingress >/dev/null 2>&1; }

# swarm_gateway_network: docker_gwbridge, made before `swarm init` would make it on a subnet of
# the default pool with the interface docker_gwbridge (both would collide with other engines).
swarm_gateway_network() {
    local subnet gateway have
    read -r subnet gateway < <(python3 -c \
        'import ipaddress, sys; i = ipaddress.ip_interface(sys.argv[1]); print(i.network, i.ip)' "$SWARM_GW_CIDR") \
        || die "swarm: MAO_SWARM_GW_CIDR=$SWARM_GW_CIDR is not an address/prefix"
    have=$(sw network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}} {{index .Options "com.docker.network.bridge.name"}}' \
        docker_gwbridge 2>/dev/null || true)
    [[ $have == "$subnet $SWARM_GW_IF" ]] && return 0
    if [[ -n $have ]]; then
        sw network rm docker_gwbridge >/dev/null \
            || fail_with_log "swarm: docker_gwbridge ($have) is in use; cannot give it $SWARM_GW_CIDR" "$SWARM_LOG"
    fi
    sw network create --driver bridge --subnet "$subnet" --gateway "$gateway" \
        -o com.docker.network.bridge.name="$SWARM_GW_IF" \
        -o com.docker.network.bridge.enable_icc=false \
        -o com.docker.network.bridge.enable_ip_masquerade=false \
        docker_gwbridge >/dev/null \
        || fail_with_log "swarm: cannot create docker_gwbridge on $subnet (taken? set MAO_SWARM_GW_CIDR)" "$SWARM_LOG"
}

# swarm_up: a second private Docker Engine, a one-node swarm manager on $SWARM_ADDR (gossip on
# 127.0.0.1:7946, which cannot be moved), no routing mesh (ingress removed: no published ports).
swarm_up() {
    local p
    if p=$(pid_alive "$SWARM_PIDFILE" dockerd); then
        wait_until 60 swarm_answers \
            || fail_with_log "swarm: dockerd (pid $p) runs but $SWARM_SOCK does not answer" "$SWARM_LOG"
        log "swarm: engine running (pid $p)"
    elif swarm_answers; then
        warn "swarm: $SWARM_SOCK answers but $SWARM_PIDFILE names no dockerd; reusing it"
    else
        start_dockerd swarm "$SWARM_SOCK" "$SWARM_DIR" "$SWARM_EXEC_ROOT" "$SWARM_LOG" swarm_answers \
            --bridge=none --iptables=false --ip-forward=false
    fi
    local state
    state=$(swarm_state)
    if [[ $state != active && $state != inactive ]]; then   # pending, error, locked: start afresh
        warn "swarm: the engine's swarm state is '$state'; leaving it to initialise a new one"
        sw swarm leave --force >/dev/null || true
    fi
    if [[ $state != active ]]; then
        swarm_gateway_network
        sw swarm init --advertise-addr "$SWARM_ADDR" --listen-addr "$SWARM_ADDR" >/dev/null \
            || fail_with_log "swarm: swarm init on $SWARM_ADDR failed (port taken? set MAO_SWARM_PORT)" "$SWARM_LOG"
        log "swarm: initialised, manager on $SWARM_ADDR"
        # the routing mesh's network comes a moment after the init
        wait_until 15 swarm_has_ingress || warn "swarm: no ingress network appeared to remove"
    else
        log "swarm: manager on $SWARM_ADDR"
    fi
    if swarm_has_ingress; then
        sw network rm ingress >/dev/null <<<y || fail_with_log "swarm: cannot remove the ingress network" "$SWARM_LOG"
    fi
    ensure_image swarm "unix://$SWARM_SOCK" || fail_with_log "swarm: importing $IMAGE failed" "$SWARM_LOG"
}

# swarm_down: services and containers gone, the swarm left, docker_gwbridge removed (and its
# interface with it), the engine stopped, what it left mounted released.
swarm_down() {
    if pid_alive "$SWARM_PIDFILE" dockerd >/dev/null && swarm_answers; then
        local ids
        ids=$(sw service ls -q 2>/dev/null || true)
        [[ -z $ids ]] || sw service rm $ids >/dev/null || warn "swarm: could not remove all services"
        ids=$(sw ps -aq 2>/dev/null || true)
        [[ -z $ids ]] || sw rm -f $ids >/dev/null || warn "swarm: could not remove all containers"
        if [[ $(swarm_state) != inactive ]]; then
            sw swarm leave --force >/dev/null || warn "swarm: could not leave the swarm"
        fi
        if sw network inspect docker_gwbridge >/dev/null 2>&1; then
            sw network rm docker_gwbridge >/dev/null || warn "swarm: could not remove docker_gwbridge"
        fi
    fi
    stop_pid swarm "$SWARM_PIDFILE" dockerd 60
    release_mounts "$SWARM_DIR/data" "$SWARM_EXEC_ROOT"
    if command -v ip >/dev/null && ip link show "$SWARM_GW_IF" >/dev/null 2>&1; then
        ip link delete "$SWARM_GW_IF" && log "swarm: removed the interface $SWARM_GW_IF" \
            || warn "swarm: could not remove the interface $SWARM_GW_IF"
    fi
}

# ---------------------------------------------------------------------------- podman

podman_answers() { DOCKER_HOST=unix://$PODMAN_SOCK timeout 10 docker version >/dev/null 2>&1; }

# The configuration of this run directory's podman: every podman started here reads it (and only
# it) through CONTAINERS_CONF, so the machine's /etc/containers/containers.conf is not changed.
ensure_containers_conf() {
    mkdir -p "$PODMAN_DIR"
    if [[ ! -f $PODMAN_CONF || $(cat "$PODMAN_CONF") != "$PODMAN_CONF_BODY" ]]; then
        printf '%s\n' "$PODMAN_CONF_BODY" >"$PODMAN_CONF"
    fi
}

# Runs in its own process (see `up`) so any failure just disables podman.
podman_up() {
    command -v podman >/dev/null || { warn "podman: not installed"; return 1; }
    ensure_containers_conf
    local p
    if p=$(pid_alive "$PODMAN_PIDFILE" podman); then
        wait_until 30 podman_answers \
            || fail_with_log "podman: service (pid $p) runs but $PODMAN_SOCK does not answer" "$PODMAN_LOG"
        log "podman: running (pid $p)"
    else
        mkdir -p "$PODMAN_DIR/storage" "$PODMAN_RUNROOT" "$(dirname "$PODMAN_SOCK")"
        rm -f "$PODMAN_SOCK"
        start_marker "$PODMAN_LOG" podman
        CONTAINERS_CONF=$PODMAN_CONF setsid podman \
            --root "$PODMAN_DIR/storage" --runroot "$PODMAN_RUNROOT" --tmpdir "$PODMAN_RUNROOT/libpod" \
            system service --time=0 "unix://$PODMAN_SOCK" \
            </dev/null >>"$PODMAN_LOG" 2>&1 9>&- &
        p=$!
        printf '%s\n' "$p" >"$PODMAN_PIDFILE"
        local deadline=$(( $(date +%s) + 60 ))
        until podman_answers; do
            kill -0 "$p" 2>/dev/null || fail_with_log "podman: service exited during start-up" "$PODMAN_LOG"
            (( $(date +%s) < deadline )) || { kill -TERM "$p" 2>/dev/null || true
                fail_with_log "podman: no answer on $PODMAN_SOCK after 60s" "$PODMAN_LOG"; }
            sleep 0.3
        done
        log "podman: started (pid $p)"
    fi
    ensure_image podman "unix://$PODMAN_SOCK" || fail_with_log "podman: importing $IMAGE failed" "$PODMAN_LOG"
}

pm() { CONTAINERS_CONF=$PODMAN_CONF podman --root "$PODMAN_DIR/storage" --runroot "$PODMAN_RUNROOT" --tmpdir "$PODMAN_RUNROOT/libpod" "$@"; }

podman_down() {
    # Podman containers outlive the API service (conmon): stop them first.
    if command -v podman >/dev/null && [[ -d $PODMAN_DIR/storage ]]; then
        local ids
        ids=$(pm ps -q 2>/dev/null || true)
        if [[ -n $ids ]]; then
            pm stop --all --time 5 >/dev/null 2>&1 || warn "podman: could not stop all containers"
        fi
    fi
    stop_pid podman "$PODMAN_PIDFILE" podman 20
    release_mounts "$PODMAN_DIR/storage" "$PODMAN_RUNROOT"
}

# release_mounts DIR...: unmount what the engines left mounted below DIR (deepest first),
# so the run directory can be deleted.
release_mounts() {
    local d m
    for d in "$@"; do
        while read -r m; do
            umount "$m" 2>/dev/null || warn "could not unmount $m"
        done < <(awk -v d="$d" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r)
    done
}

# ---------------------------------------------------------------------------- postgres

PG_BIN=''
find_pg_bin() {
    local initdb
    initdb=$(command -v initdb || true)
    [[ -n $initdb ]] || initdb=$(ls -1d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n1 || true)
    [[ -n $initdb && -x $initdb ]] || die "postgres: initdb not found (expected /usr/local/bin/initdb)"
    PG_BIN=$(dirname "$(readlink -f "$initdb")")
    [[ -x $PG_BIN/pg_ctl ]] || die "postgres: pg_ctl not found next to $initdb"
}

as_postgres() { runuser -u postgres -- "$@"; }

ensure_postgres_user() {
    getent passwd postgres >/dev/null && return 0
    if getent group postgres >/dev/null; then
        useradd --system -g postgres -d /var/lib/postgresql -M -s /bin/bash postgres
    else
        useradd --system -U -d /var/lib/postgresql -M -s /bin/bash postgres
    fi
    log "postgres: created OS user postgres"
}

# PG_DIR lives in the run directory unless the postgres user cannot traverse it
# (e.g. a checkout under /root): then it moves to /var/tmp.
resolve_pg_dir() {
    if [[ -L $RUN/pg ]]; then PG_DIR=$(readlink -f "$RUN/pg"); return; fi
    if [[ -d $RUN/pg ]] || ! id postgres >/dev/null 2>&1 || as_postgres test -x "$RUN"; then
        PG_DIR=$RUN/pg
    else
        PG_DIR=/var/tmp/mao-pg-$HASH
    fi
}

pg_paths() {
    resolve_pg_dir
    PG_DATA=$PG_DIR/data
    PG_LOG=$PG_DIR/postgres.log
    PG_SOCKDIR=$PG_DIR/sock
    if (( ${#PG_SOCKDIR} > 90 )); then PG_SOCKDIR=/tmp/mao-pgsock-$HASH; fi
}

pg_running() { [[ -f $PG_DATA/PG_VERSION ]] && as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }
pg_psql() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }

postgres_up() {
    find_pg_bin
    ensure_postgres_user
    pg_paths
    if [[ $PG_DIR != "$RUN/pg" ]]; then
        mkdir -p "$PG_DIR"; ln -sfn "$PG_DIR" "$RUN/pg"
        log "postgres: $RUN is not reachable by user postgres; data in $PG_DIR"
    fi
    mkdir -p "$PG_DIR" "$PG_SOCKDIR"
    chown postgres: "$PG_DIR" "$PG_SOCKDIR"
    chmod 700 "$PG_DIR"
    touch "$PG_LOG"; chown postgres: "$PG_LOG"

    if pg_running; then
        log "postgres: running ($(head -n1 "$PG_DATA/postmaster.pid"))"
    else
        if PGCONNECT_TIMEOUT=3 pg_psql -d postgres -tAc 'select 1' >/dev/null 2>&1; then
            die "postgres: port $PG_PORT is taken by another server (not $PG_DATA); stop it or set MAO_PG_PORT"
        fi
        if [[ ! -f $PG_DATA/PG_VERSION ]]; then
            log "postgres: initdb $PG_DATA"
            start_marker "$PG_LOG" initdb
            as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 --locale=C --no-sync \
                >>"$PG_LOG" 2>&1 || fail_with_log "postgres: initdb failed" "$PG_LOG"
            printf "\ninclude_if_exists = 'mao.conf'\n" >>"$PG_DATA/postgresql.conf"
        fi
        # Throw-away test instance: durability off for speed.
        cat >"$PG_DATA/mao.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCKDIR'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
        chown postgres: "$PG_DATA/mao.conf"
        start_marker "$PG_LOG" postgres
        setsid -w runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start \
            </dev/null >/dev/null 2>&1 9>&- || fail_with_log "postgres: pg_ctl start failed" "$PG_LOG"
        log "postgres: started ($(head -n1 "$PG_DATA/postmaster.pid"))"
    fi
    wait_until 30 pg_psql -d postgres -tAc 'select 1' >/dev/null 2>&1 \
        || fail_with_log "postgres: no answer on 127.0.0.1:$PG_PORT" "$PG_LOG"
    if [[ $(pg_psql -d postgres -tAc "select 1 from pg_database where datname = '$PG_DB'") != 1 ]]; then
        pg_psql -d postgres -c "create database $PG_DB" >/dev/null
        log "postgres: created database $PG_DB"
    fi
}

postgres_down() {
    find_pg_bin
    pg_paths
    if pg_running; then
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null
        log "postgres: stopped"
    else
        log "postgres: not running"
    fi
}

# ---------------------------------------------------------------------------- sshd

SSH_CLIENT_OPTS=()
ssh_paths() {
    SSH_CONFIG=$SSH_DIR/sshd_config
    SSH_PIDFILE=$SSH_DIR/sshd.pid
    SSH_HOSTKEY=$SSH_DIR/ssh_host_ed25519_key
    SSH_KEY=$SSH_DIR/id_ed25519
    SSH_KNOWN=$SSH_DIR/known_hosts
    SSH_CLIENT_OPTS=(-F /dev/null -i "$SSH_KEY" -o IdentitiesOnly=yes -o BatchMode=yes
                     -o "UserKnownHostsFile=$SSH_KNOWN" -o StrictHostKeyChecking=yes -p "$SSH_PORT")
}

sshd_answers() { port_open "$SSH_PORT"; }

sshd_up() {
    ssh_paths
    mkdir -p "$SSH_DIR" "$GIT_SRV" "$LOGS"
    chmod 700 "$SSH_DIR"
    [[ -f $SSH_HOSTKEY ]] || ssh-keygen -q -t ed25519 -N '' -C "mao-test-host" -f "$SSH_HOSTKEY"
    [[ -f $SSH_KEY ]] || ssh-keygen -q -t ed25519 -N '' -C "mao-test-client" -f "$SSH_KEY"
    chmod 600 "$SSH_HOSTKEY" "$SSH_KEY"
    cp -f "$SSH_KEY.pub" "$SSH_DIR/authorized_keys"
    {
        printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" "$(cut -d' ' -f1,2 "$SSH_HOSTKEY.pub")"
        printf '[localhost]:%s %s\n' "$SSH_PORT" "$(cut -d' ' -f1,2 "$SSH_HOSTKEY.pub")"
    } >"$SSH_KNOWN"
    cat >"$SSH_CONFIG" <<EOF
# Loopback git server for the tests (generated by scripts/services.sh).
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey "$SSH_HOSTKEY"
PidFile "$SSH_PIDFILE"
AuthorizedKeysFile "$SSH_DIR/authorized_keys"
AllowUsers root
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
MaxStartups 100:30:200
MaxSessions 50
EOF

    local p
    if p=$(pid_alive "$SSH_PIDFILE" sshd); then
        log "sshd: running (pid $p)"
    else
        sshd_answers && die "sshd: port $SSH_PORT is taken by another process; stop it or set MAO_SSH_PORT"
        mkdir -p /run/sshd && chmod 755 /run/sshd   # privilege separation directory
        /usr/sbin/sshd -t -f "$SSH_CONFIG" 2>>"$SSH_LOG" || fail_with_log "sshd: invalid config $SSH_CONFIG" "$SSH_LOG"
        rm -f "$SSH_PIDFILE"
        start_marker "$SSH_LOG" sshd
        setsid -w /usr/sbin/sshd -f "$SSH_CONFIG" -E "$SSH_LOG" </dev/null >>"$SSH_LOG" 2>&1 9>&- \
            || fail_with_log "sshd: failed to start" "$SSH_LOG"
        wait_until 15 pid_alive "$SSH_PIDFILE" sshd >/dev/null || fail_with_log "sshd: no pid file" "$SSH_LOG"
        p=$(pid_alive "$SSH_PIDFILE" sshd)
        log "sshd: started (pid $p)"
    fi
    wait_until 15 sshd_answers || fail_with_log "sshd: nothing listens on 127.0.0.1:$SSH_PORT" "$SSH_LOG"

    # End-to-end check: git over ssh against a bare repository outside $GIT_SRV.
    local probe=$SSH_DIR/selftest.git
    [[ -f $probe/HEAD ]] || git init -q --bare "$probe"
    GIT_SSH_COMMAND="ssh ${SSH_CLIENT_OPTS[*]@Q}" \
        timeout 30 git ls-remote "ssh://root@127.0.0.1:$SSH_PORT$probe" >/dev/null 2>>"$SSH_LOG" \
        || fail_with_log "sshd: git ls-remote over ssh failed" "$SSH_LOG"
    log "sshd: git over ssh works (repos in $GIT_SRV)"
}

# ---------------------------------------------------------------------------- slurm

slurm_answers() { SLURM_CONF=$SLURM_CONF_FILE timeout 10 sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }

# slurm_config: slurm.conf for one node, this machine as `localhost`, no cgroups, no slurmdbd
# (job completions in a text file, which `sacct -c` reads). The node offers four times the
# machine's cores (config_overrides) so that the tests' jobs do not queue behind each other.
slurm_config() {
    local cpus mem
    cpus=$(( $(nproc) * 4 ))
    mem=$(free -m | awk '/^Mem:/{print $2}')
    cat >"$SLURM_CONF_FILE.new" <<CONF
# One-node Slurm for the tests (generated by scripts/services.sh).
ClusterName=mao
SlurmctldHost=localhost
SlurmctldPort=$SLURM_PORT
SlurmdPort=$(( SLURM_PORT + 1 ))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_DIR/munge.socket
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
MinJobAge=300
KillWait=5
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$SLURM_DIR/jobcomp.txt
NodeName=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
    mv -f "$SLURM_CONF_FILE.new" "$SLURM_CONF_FILE"
}

# slurm_daemon LABEL PIDFILE COMM CMD...: start a daemon that forks itself, in a session of its
# own, holding none of this script's descriptors; wait for its pid file.
slurm_daemon() {
    local label=$1 pidfile=$2 comm=$3 p
    shift 3
    if p=$(pid_alive "$pidfile" "$comm"); then
        log "slurm: $label running (pid $p)"
        return 0
    fi
    rm -f "$pidfile"
    setsid "$@" </dev/null >>"$LOGS/slurm-start.log" 2>&1 9>&- \
        || fail_with_log "slurm: $label failed to start" "$LOGS/slurm-start.log"
    wait_until 30 pid_alive "$pidfile" "$comm" >/dev/null || fail_with_log "slurm: $label wrote no pid file" "$LOGS/$label.log"
    log "slurm: $label started (pid $(pid_alive "$pidfile" "$comm"))"
}

slurm_up() {
    command -v slurmctld >/dev/null && command -v munged >/dev/null \
        || die "slurm: slurmctld or munged missing (packages slurmctld slurmd slurm-client munge)"
    mkdir -p "$SLURM_DIR/state" "$SLURM_DIR/spool" "$MUNGE_DIR" "$LOGS"
    chmod 755 "$MUNGE_DIR"
    if [[ ! -f $MUNGE_DIR/munge.key ]]; then
        dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=1024 count=1 status=none
        chmod 400 "$MUNGE_DIR/munge.key"
    fi
    slurm_daemon munged "$MUNGE_DIR/munged.pid" munged munged --key-file="$MUNGE_DIR/munge.key" \
        --socket="$MUNGE_DIR/munge.socket" --pid-file="$MUNGE_DIR/munged.pid" \
        --seed-file="$MUNGE_DIR/munged.seed" --log-file="$LOGS/munged.log"
    slurm_config
    start_marker "$LOGS/slurm-start.log" slurm
    slurm_daemon slurmctld "$SLURM_DIR/slurmctld.pid" slurmctld slurmctld -f "$SLURM_CONF_FILE"
    slurm_daemon slurmd "$SLURM_DIR/slurmd.pid" slurmd slurmd -f "$SLURM_CONF_FILE" -N localhost
    wait_until 60 slurm_answers || fail_with_log "slurm: the node localhost is not idle after 60s" "$LOGS/slurmctld.log"
    log "slurm: node localhost up (SLURM_CONF=$SLURM_CONF_FILE)"
}

slurm_down() {
    # the jobs' batch scripts remove their containers on TERM
    if pid_alive "$SLURM_DIR/slurmctld.pid" slurmctld >/dev/null; then
        SLURM_CONF=$SLURM_CONF_FILE timeout 30 scancel --full --state=RUNNING,PENDING --user=root 2>/dev/null || true
    fi
    stop_pid slurmd "$SLURM_DIR/slurmd.pid" slurmd 30
    stop_pid slurmctld "$SLURM_DIR/slurmctld.pid" slurmctld 30
    stop_pid munged "$MUNGE_DIR/munged.pid" munged 10
}

# ---------------------------------------------------------------------------- etcd

etcd_check() {
    local etcd etcdctl
    etcd=$(command -v etcd || true); etcdctl=$(command -v etcdctl || true)
    [[ -n $etcd && -n $etcdctl ]] || die "etcd: binaries missing (packages etcd-server etcd-client)"
    log "etcd: $etcd ($("$etcd" --version 2>/dev/null | head -n1)), etcdctl: $etcdctl (not started; tests run their own)"
}

# ---------------------------------------------------------------------------- env file

write_env() {
    local podman_ok=$1 tmp
    tmp=$(mktemp "$RUN/.services.env.XXXXXX")
    {
        printf '# MAO_TEST_* settings for the local services; written by scripts/services.sh up.\n'
        printf 'export %s=%q\n' \
            MAO_TEST_DOCKER_HOST "unix://$DOCKER_SOCK" \
            MAO_TEST_SWARM_HOST "unix://$SWARM_SOCK"
        (( podman_ok )) && printf 'export %s=%q\n' MAO_TEST_PODMAN_HOST "unix://$PODMAN_SOCK"
        printf 'export %s=%q\n' \
            MAO_TEST_PG_URL "postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/$PG_DB" \
            MAO_TEST_SSH_KEY_DIR "$SSH_DIR" \
            MAO_TEST_SSH_URL_BASE "ssh://root@127.0.0.1:$SSH_PORT$GIT_SRV" \
            MAO_TEST_SSH_REPO_ROOT "$GIT_SRV" \
            MAO_TEST_ETCD_BIN "$(command -v etcd)" \
            MAO_TEST_SLURM_CONF "$SLURM_CONF_FILE" \
            MAO_TEST_IMAGE "$IMAGE" \
            MAO_TEST_REQUIRE_SERVICES 1
    } >"$tmp"
    chmod 644 "$tmp"
    mv -f "$tmp" "$ENV_FILE"
    log "wrote $ENV_FILE"
}

ensure_gitignore() {
    local gi=$REPO/.gitignore
    [[ $RUN == "$REPO/.run" ]] || return 0
    if [[ ! -f $gi ]] || ! grep -qxE '/?\.run/?' "$gi"; then
        [[ -s $gi && $(tail -c1 "$gi") != '' ]] && printf '\n' >>"$gi"
        printf '.run/\n' >>"$gi"
    fi
}

# ---------------------------------------------------------------------------- commands

lock() {
    exec 9>"$RUN/.lock"
    flock -w 900 9 || die "another scripts/services.sh is still running (lock $RUN/.lock)"
}

cmd_up() {
    require_root
    lock
    local t0=$SECONDS podman_ok=0
    mkdir -p "$LOGS"
    ensure_gitignore
    install_packages
    build_rootfs
    docker_up
    swarm_up
    if MAO_SERVICES_INTERNAL=1 "$SELF" __podman_up; then
        podman_ok=1
    else
        warn "podman unavailable: MAO_TEST_PODMAN_HOST will not be set"
    fi
    postgres_up
    sshd_up
    slurm_up
    etcd_check
    write_env "$podman_ok"
    log "all services up in $(( SECONDS - t0 ))s; run: source $ENV_FILE"
}

# `up docker`: only what the demo needs (Docker Engine and the base image).
cmd_up_docker() {
    require_root
    lock
    mkdir -p "$LOGS"
    ensure_gitignore
    apt_install docker.io busybox-static git || die "could not install docker.io busybox-static git"
    build_rootfs
    docker_up
    printf 'unix://%s\n' "$DOCKER_SOCK"
}

# `image`: import the base image into the caller's engine (its DOCKER_HOST or DOCKER_CONTEXT,
# else Docker's default), the one the demo found answering.
cmd_image() {
    apt_install busybox-static || die "could not install busybox-static"
    build_rootfs
    local setting host='' engine
    for setting in "${CALLER_DOCKER_ENV[@]}"; do export "${setting?}"; done
    host=${DOCKER_HOST:-}
    engine=${host:-${DOCKER_CONTEXT:+the context $DOCKER_CONTEXT}}
    engine=${engine:-Docker\'s default engine}
    ensure_image "$engine" "$host" || die "could not import $IMAGE into $engine"
}

cmd_down() {
    require_root
    lock
    ssh_paths
    podman_down
    swarm_down
    stop_pid docker "$DOCKER_PIDFILE" dockerd 60
    release_mounts "$DOCKER_DIR/data" "$DOCKER_EXEC_ROOT"
    bridge_down
    postgres_down
    stop_pid sshd "$SSH_PIDFILE" sshd 10
    slurm_down
}

cmd_status() {
    local p
    ssh_paths
    if p=$(pid_alive "$DOCKER_PIDFILE" dockerd) && docker_answers; then
        printf '%-9s up    pid %-7s unix://%s (bridge %s %s)\n' docker "$p" "$DOCKER_SOCK" "$BRIDGE_IF" "$BRIDGE_CIDR"
    else
        printf '%-9s down\n' docker
    fi
    if p=$(pid_alive "$SWARM_PIDFILE" dockerd) && swarm_answers && [[ $(swarm_state) == active ]]; then
        printf '%-9s up    pid %-7s unix://%s (manager %s, gateway %s %s)\n' swarm "$p" "$SWARM_SOCK" "$SWARM_ADDR" \
            "$SWARM_GW_IF" "$SWARM_GW_CIDR"
    else
        printf '%-9s down\n' swarm
    fi
    if p=$(pid_alive "$PODMAN_PIDFILE" podman) && podman_answers; then
        printf '%-9s up    pid %-7s unix://%s\n' podman "$p" "$PODMAN_SOCK"
    elif command -v podman >/dev/null; then
        printf '%-9s down\n' podman
    else
        printf '%-9s down  (not installed)\n' podman
    fi
    if command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        find_pg_bin; pg_paths
        if id postgres >/dev/null 2>&1 && pg_running; then
            printf '%-9s up    pid %-7s 127.0.0.1:%s/%s\n' postgres "$(head -n1 "$PG_DATA/postmaster.pid")" "$PG_PORT" "$PG_DB"
        else
            printf '%-9s down\n' postgres
        fi
    else
        printf '%-9s down  (initdb not found)\n' postgres
    fi
    if p=$(pid_alive "$SSH_PIDFILE" sshd) && sshd_answers; then
        printf '%-9s up    pid %-7s ssh://root@127.0.0.1:%s%s\n' sshd "$p" "$SSH_PORT" "$GIT_SRV"
    else
        printf '%-9s down\n' sshd
    fi
    if p=$(pid_alive "$SLURM_DIR/slurmctld.pid" slurmctld) && slurm_answers; then
        printf '%-9s up    pid %-7s 127.0.0.1:%s SLURM_CONF=%s\n' slurm "$p" "$SLURM_PORT" "$SLURM_CONF_FILE"
    else
        printf '%-9s down\n' slurm
    fi
    if [[ -x /usr/bin/chromium ]]; then
        printf '%-9s bin   /usr/bin/chromium (browser tests)\n' chromium
    else
        printf '%-9s missing (scripts/services.sh up installs it)\n' chromium
    fi
    if command -v etcd >/dev/null && command -v etcdctl >/dev/null; then
        printf '%-9s bin   %s %s (tests start their own clusters)\n' etcd "$(command -v etcd)" "$(command -v etcdctl)"
    else
        printf '%-9s missing binaries\n' etcd
    fi
}

case ${1:-} in
    up)     if [[ ${2:-} == docker ]]; then cmd_up_docker; else cmd_up; fi ;;
    image)  cmd_image ;;
    down)   cmd_down ;;
    status) cmd_status ;;
    __podman_up)
        [[ -n ${MAO_SERVICES_INTERNAL:-} ]] || die "internal command"
        podman_up ;;
    *)  printf 'usage: %s up [docker]|down|status|image\n' "$0" >&2; exit 2 ;;
esac
