#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, from Debian packages, for the cluster test
# (tests/test_slurm.py) and for trying profiles/slurm without a cluster:
#
#   bash envs/slurm-single-node.sh start    # install if needed, configure, start, wait for idle
#   bash envs/slurm-single-node.sh stop     # stop the daemons it started (by their PIDs)
#   bash envs/slurm-single-node.sh status
#
# The node is this machine on 127.0.0.1 with its real CPUs and memory (`slurmd -C`), in a
# partition named `compute` (the profile's default), with no accounting database (so
# `sacct` fails, as on many small clusters: the profile checks status with squeue) and
# MinJobAge=300 s (squeue sees finished jobs that long). Needs root (or password-less
# sudo) and the Debian archive; runs without systemd (daemons started in the background).
set -euo pipefail

STATE=/run/dlrosetta-slurm
CONF=/etc/slurm/slurm.conf
PACKAGES=(munge slurmctld slurmd slurm-client)

log() { printf '[slurm] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  else die "needs root or password-less sudo to $*"; fi
}

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sinfo >/dev/null \
     && command -v munged >/dev/null; then
    return 0
  fi
  log "installing ${PACKAGES[*]} (Debian packages)"
  as_root apt-get update -qq || die "apt-get update failed (no Debian archive?)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" \
    >/dev/null || die "could not install ${PACKAGES[*]}"
}

running() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

start_munge() {
  running munged && return 0
  as_root mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge "$STATE"
  if [ ! -s /etc/munge/munge.key ]; then
    as_root sh -c 'dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null'
  fi
  as_root chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
  as_root chmod 0700 /etc/munge && as_root chmod 0400 /etc/munge/munge.key
  as_root runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  as_root cp /run/munge/munged.pid "$STATE/munged.pid"
}

write_conf() {
  local node
  # The node line exactly as slurmd measures this machine (CPUs, sockets, cores, memory).
  node=$(slurmd -C | head -n1 | sed "s/^NodeName=[^ ]*/NodeName=$(hostname -s) NodeAddr=127.0.0.1/")
  as_root mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
  as_root tee "$CONF" >/dev/null <<EOF
# Written by dlrosetta envs/slurm-single-node.sh: one node, this machine.
ClusterName=dlrosetta
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
ReturnToService=2
EnforcePartLimits=ALL
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
$node State=UNKNOWN
PartitionName=compute Nodes=$(hostname -s) Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  install
  start_munge
  if ! running slurmctld; then
    write_conf
    as_root slurmctld -c   # -c: a clean start, no jobs from an earlier cluster
  fi
  running slurmd || as_root slurmd
  local deadline=$((SECONDS + 60))
  until sinfo -h -o %T 2>/dev/null | grep -qx idle; do
    [ $SECONDS -lt $deadline ] || die "the node did not become idle in 60 s: $(sinfo 2>&1 | tail -n2); see /var/log/slurm/"
    sleep 1
  done
  log "up: $(sinfo -h -o '%P %D %c CPUs %m MB %T')"
}

stop() {
  local daemon
  for daemon in slurmd slurmctld munged; do
    if running "$daemon"; then
      as_root kill "$(cat "$STATE/$daemon.pid")" || true
    fi
  done
  for daemon in slurmd slurmctld munged; do
    local deadline=$((SECONDS + 20))
    while running "$daemon" && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
    as_root rm -f "$STATE/$daemon.pid"
  done
  # SLURM's clients retry an absent controller for MessageTimeout (10 s), and Snakemake's
  # SLURM executor plugin runs `scontrol show config` whenever sinfo is on PATH, at every
  # start: 10 s added to every snakemake call on this machine. Stopped, the clients give
  # up at once; `start` writes the configuration anew.
  [ -f "$CONF" ] && ! grep -q '^MessageTimeout=' "$CONF" && echo 'MessageTimeout=1' | as_root tee -a "$CONF" >/dev/null
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo && squeue ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
