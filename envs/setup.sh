#!/usr/bin/env bash
# Sets up a fresh Debian machine for dlrosetta: the R and Julia runtimes and Chromium (the
# report's layout test) from Debian packages, and the orchestrator environment (.venv:
# Snakemake, uv, the dlrosetta package, report and test tools) from its lock,
# envs/orchestrator.lock. The per-stack Python environments (.venvs/<env>, from
# envs/<env>.lock) are built by the workflow itself (rules/envs.smk), so a study only pays
# for the stacks it runs. Locks: envs/lock.sh, docs/environments.md.
#
# Idempotent: a second run only checks. Runtimes that cannot be installed (no root, no
# archive) are reported and left out; their stacks then write `skipped` records.
# DLROSETTA_SKIP_APT=1 skips the Debian packages (e.g. on a cluster login node).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  else return 1; fi
}

apt_updated=0
apt_install() {
  [ "$apt_updated" = 1 ] || { as_root apt-get update -qq && apt_updated=1; } || return 1
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

install_r() {
  if command -v Rscript >/dev/null && Rscript -e 'library(reticulate); library(jsonlite); library(testthat)' >/dev/null 2>&1; then
    return 0
  fi
  log "installing R 4.2 with reticulate, jsonlite, testthat (Debian packages)"
  apt_install r-base-core r-cran-reticulate r-cran-jsonlite r-cran-testthat \
    || log "WARNING: could not install R; the R stacks will be recorded as skipped"
}

install_julia() {
  # Bookworm has no Julia; bullseye (same archive) has 1.5.3. Bullseye is pinned low so
  # that nothing else comes from it, except libunwind8: Julia 1.5 segfaults on every
  # exception with bookworm's libunwind 1.6 (in _ULx86_64_dwarf_search_unwind_table), and
  # bullseye's 1.3.2 works, so that one package is held at bullseye's version.
  if command -v julia >/dev/null && dpkg-query -W -f='${Version}' libunwind8 2>/dev/null | grep -q '^1\.3' \
      && dpkg-query -W libopenblas64-0-pthread >/dev/null 2>&1; then
    return 0
  fi
  log "installing Julia 1.5.3 and libunwind 1.3 from Debian bullseye (pinned)"
  if [ ! -f /etc/apt/preferences.d/dlrosetta-bullseye ]; then
    echo 'deb http://deb.debian.org/debian bullseye main' \
      | as_root tee /etc/apt/sources.list.d/dlrosetta-bullseye.list >/dev/null || true
    printf 'Package: *\nPin: release n=bullseye\nPin-Priority: 100\n\nPackage: libunwind8\nPin: release n=bullseye\nPin-Priority: 1001\n' \
      | as_root tee /etc/apt/preferences.d/dlrosetta-bullseye >/dev/null || true
    apt_updated=0
  fi
  apt_install --allow-downgrades julia/bullseye libjulia1/bullseye julia-common/bullseye libunwind8/bullseye libopenblas64-0-pthread \
    || log "WARNING: could not install Julia; the Julia stack will be recorded as skipped"
}

precompile_julia() {
  # Julia caches compiled package code on first load; doing it here keeps it out of
  # the first timed run: the shared library DLRosetta, then each Julia stack's package
  # (julia/stacks/<id>/Project.toml names it).
  command -v julia >/dev/null || return 0
  julia --project=julia --startup-file=no -e 'using DLRosetta' >/dev/null 2>&1 \
    || log "WARNING: the Julia library did not load; see julia --project=julia -e 'using DLRosetta'"
  local project module
  for project in julia/stacks/*/; do
    [ -f "$project/Project.toml" ] || continue
    module=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$project/Project.toml")
    julia --project="$project" --startup-file=no -e "using $module" >/dev/null 2>&1 \
      || log "WARNING: the Julia stack in $project did not load; see julia --project=$project -e 'using $module'"
  done
}

install_chromium() {
  # Headless Chromium lays the report out in a test (nothing wider than 1400 px) and
  # screenshots it (README, "Look at the report"); nothing else needs it.
  command -v chromium >/dev/null && return 0
  log "installing Chromium (Debian package), for the report's layout test"
  apt_install chromium || log "WARNING: could not install chromium; the report layout test will be skipped"
}

install_orchestrator() {
  # From the committed locks (envs/lock.sh), with uv: pip installs uv (hash-checked, at
  # the lock's version), then `uv pip sync` makes .venv exactly orchestrator.lock (and
  # rpy2.lock where R is installed), and the dlrosetta package goes in editable. Where uv
  # cannot be installed, pip installs the same locks. uv does not read pip's configuration:
  # `dlrosetta.venv --uv-env` hands it the index settings `pip config list` shows.
  local py=${PYTHON:-python3}
  if [ ! -x .venv/bin/python ]; then
    log "creating .venv with $($py --version 2>&1)"
    "$py" -m venv .venv
  fi
  local stamp=.venv/.dlrosetta-installed
  local want locks=(envs/orchestrator.lock)
  if command -v R >/dev/null && [ -f envs/rpy2.lock ]; then locks+=(envs/rpy2.lock); fi
  want=$(cat "${locks[@]}" python/pyproject.toml | sha256sum | cut -c1-16)-${#locks[@]}
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  log "installing the orchestrator environment from ${locks[*]}"
  # uv's own pins and hashes, out of the lock: `uv==X \` and its `--hash` lines.
  local uv_pin
  uv_pin=$(awk '/^uv==/ {p = 1; print; next} p && /^ +--hash/ {print; next} {p = 0}' envs/orchestrator.lock)
  if [ -n "$uv_pin" ] && .venv/bin/python -m pip install -q --no-deps --require-hashes -r <(echo "$uv_pin") \
     && [ -x .venv/bin/uv ]; then
    eval "$(PYTHONPATH=python .venv/bin/python -m dlrosetta.venv --uv-env)"
    local sync=(.venv/bin/uv pip sync -q --python .venv/bin/python)
    if ! "${sync[@]}" "${locks[@]}"; then
      [ ${#locks[@]} -gt 1 ] || { log "ERROR: uv could not install envs/orchestrator.lock"; return 1; }
      log "WARNING: rpy2 did not install; the rpy2 bridge tests will be skipped"
      "${sync[@]}" envs/orchestrator.lock
    fi
    .venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e python
  else
    log "WARNING: uv could not be installed: installing the locks with pip (slower)"
    .venv/bin/python -m pip install -q --no-deps --require-hashes -r envs/orchestrator.lock
    .venv/bin/python -m pip install -q --no-deps -e python
    if [ ${#locks[@]} -gt 1 ]; then
      .venv/bin/python -m pip install -q --no-deps --require-hashes -r envs/rpy2.lock \
        || log "WARNING: rpy2 did not install; the rpy2 bridge tests will be skipped"
    fi
  fi
  echo "$want" > "$stamp"
}

if [ "${DLROSETTA_SKIP_APT:-0}" != 1 ]; then
  install_r
  install_julia
  install_chromium
fi
install_orchestrator
precompile_julia
log "ready: R $(command -v Rscript >/dev/null && Rscript -e 'cat(as.character(getRversion()))' 2>/dev/null || echo absent)," \
    "Julia $(command -v julia >/dev/null && julia --version 2>/dev/null | awk '{print $3}' || echo absent)," \
    "$(.venv/bin/snakemake --version 2>/dev/null | sed 's/^/Snakemake /')"
