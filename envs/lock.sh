#!/usr/bin/env bash
# Compiles each environment's lock, envs/<env>.lock, from its top-level spec envs/<env>.txt
# (the file people edit): every package at an exact version with the sha256 of its files,
# for CPython 3.11 on this machine kind (Linux x86_64). The workflow (rules/envs.smk) and
# envs/setup.sh install the locks, never the specs (docs/environments.md).
#
#   bash envs/lock.sh                 # every envs/*.txt
#   bash envs/lock.sh torch jax       # some
#   bash envs/lock.sh --upgrade torch # also move unpinned dependencies to their newest releases
#
# Then commit the locks. A new lock keeps the versions of the one it replaces wherever the
# spec allows (uv reads the old lock as its preferences), so re-locking an unchanged spec
# changes nothing. Each lock names the sha256 of the spec it was compiled from; a build
# from a lock compiled from another version of its spec fails, saying to run this.
#
# Needs uv (envs/setup.sh installs it into .venv). uv does not read pip's configuration:
# the index settings `pip config list` shows here (find-links, extra-index-url, constraint)
# are handed to it as UV_* variables (`python -m dlrosetta.venv --uv-env`); without them
# torch==2.13.0 resolves to PyPI's CUDA build. A lock compiled against this machine's local
# wheels holds only those files' hashes (docs/environments.md, "Portability").
# rpy2.lock is compiled within orchestrator.lock's pins (both go into .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[lock] %s\n' "$*" >&2; }

py=.venv/bin/python
[ -x "$py" ] || py=${PYTHON:-python3}
uv=.venv/bin/uv
[ -x "$uv" ] || uv=$(command -v uv) || { log "ERROR: uv not found: run bash envs/setup.sh (it installs uv into .venv)"; exit 1; }

upgrade=()
envs=()
for arg in "$@"; do
  case "$arg" in
    --upgrade) upgrade=(--upgrade) ;;
    *) envs+=("${arg%.txt}") ;;
  esac
done
if [ ${#envs[@]} = 0 ]; then
  # orchestrator first: rpy2.lock is compiled within its pins.
  envs=(orchestrator)
  for f in envs/*.txt; do
    e=$(basename "$f" .txt)
    [ "$e" = orchestrator ] || envs+=("$e")
  done
fi

eval "$(PYTHONPATH=python "$py" -m dlrosetta.venv --uv-env)"

for env in "${envs[@]}"; do
  spec=envs/$env.txt
  lock=envs/$env.lock
  [ -f "$spec" ] || { log "ERROR: no $spec"; exit 1; }
  within=()
  [ "$env" = rpy2 ] && within=(--constraint envs/orchestrator.lock)
  log "$spec -> $lock"
  "$uv" pip compile --quiet "$spec" "${within[@]}" "${upgrade[@]}" --output-file "$lock" \
    --generate-hashes --python "$py" --python-version 3.11 --custom-compile-command "bash envs/lock.sh $env"
  # The spec's checksum, under uv's header: venv.py refuses a lock of another spec version.
  sed -i "2a # requirements: $spec sha256=$(sha256sum "$spec" | cut -d' ' -f1)" "$lock"
done
