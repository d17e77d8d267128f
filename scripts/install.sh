#!/usr/bin/env bash
# Installs the project on Debian 12: .venv with the package (and its test extra with --test) and,
# with --test, the real servers the integration tests start (never as system services).
# Safe to rerun: it installs only what is missing.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/install.sh [--test]

  (none)   apt: python3 python3-venv python3-dev gcc; .venv with `pip install -e .`
  --test   also `pip install -e '.[test]'`, the Debian server packages the integration
           tests start (mosquitto, influxdb, victoria-metrics, prometheus, alertmanager,
           snmp_exporter, net-snmp, chromium, slurmctld, slurmd, munge) and snmpsim in
           /opt/dcim/snmpsim-venv

Runs as root, or as a user with sudo. Environment: PYTHON (default python3) makes .venv.
EOF
}

WITH_TEST=0
for arg in "$@"; do
    case "$arg" in
        --test) WITH_TEST=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "install.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BASE_PKGS=(python3 python3-venv python3-dev gcc)
# fonts-liberation is only a Recommends of chromium, and recommends are not installed; without
# a font, headless renders of dashboards have no text.
TEST_PKGS=(mosquitto mosquitto-clients influxdb victoria-metrics prometheus
    prometheus-alertmanager prometheus-snmp-exporter snmp snmpd chromium fonts-liberation
    slurmctld slurmd slurm-client munge)
SNMPSIM_HOME=/opt/dcim
SNMPSIM_VENV=$SNMPSIM_HOME/snmpsim-venv
POLICY_RC=/usr/sbin/policy-rc.d

log() { printf '[install] %s\n' "$*" >&2; }
die() { printf '[install] error: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
    as_root() { "$@"; }
else
    command -v sudo >/dev/null 2>&1 || die "not root and sudo is not installed"
    as_root() { sudo "$@"; }
fi

export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

apt_get() {
    # env passes DEBIAN_FRONTEND through sudo; the lock timeout waits out a concurrent apt run.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -y -q \
        -o DPkg::Lock::Timeout=900 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

missing_pkgs() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -qx 'install ok installed' \
            || printf '%s\n' "$p"
    done
}

APT_UPDATED=0
apt_install() {
    local missing
    mapfile -t missing < <(missing_pkgs "$@")
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        apt_get update
        APT_UPDATED=1
    fi
    log "apt-get install ${missing[*]}"
    apt_get install --no-install-recommends "${missing[@]}"
}

# A policy-rc.d that answers 101 keeps postinst scripts from starting the services they
# install; a file that was there before is put back afterwards.
POLICY_BACKUP=""
POLICY_INSTALLED=0
restore_policy_rc() {
    if [ "$POLICY_INSTALLED" -eq 1 ]; then
        if [ -n "$POLICY_BACKUP" ]; then
            as_root mv -f "$POLICY_BACKUP" "$POLICY_RC"
        else
            as_root rm -f "$POLICY_RC"
        fi
        POLICY_INSTALLED=0
    fi
}
block_service_starts() {
    if [ -e "$POLICY_RC" ]; then
        POLICY_BACKUP="$(as_root mktemp /usr/sbin/policy-rc.d.dcim-backup.XXXXXX)"
        as_root cp -p "$POLICY_RC" "$POLICY_BACKUP"
    fi
    POLICY_INSTALLED=1
    printf '#!/bin/sh\n# written by dcim scripts/install.sh while it installs packages\nexit 101\n' \
        | as_root tee "$POLICY_RC" >/dev/null
    as_root chmod 755 "$POLICY_RC"
}
trap restore_policy_rc EXIT

# --- system packages -------------------------------------------------------------------
apt_install "${BASE_PKGS[@]}"

if [ "$WITH_TEST" -eq 1 ]; then
    mapfile -t missing_test < <(missing_pkgs "${TEST_PKGS[@]}")
    if [ "${#missing_test[@]}" -gt 0 ]; then
        block_service_starts
        apt_install "${missing_test[@]}"
        restore_policy_rc
    fi
fi

# --- project virtualenv ----------------------------------------------------------------
PYTHON="${PYTHON:-python3}"
if ! .venv/bin/python -c 'import sys' >/dev/null 2>&1; then
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$PYTHON is older than 3.11"
    log "creating .venv with $PYTHON"
    rm -rf .venv
    "$PYTHON" -m venv .venv
fi

if [ "$WITH_TEST" -eq 1 ]; then spec='.[test]'; else spec='.'; fi
# The stamp records what was installed for which pyproject.toml, so a rerun skips pip.
stamp_file=.venv/.dcim-install-stamp
pyproject_sum="$(sha256sum pyproject.toml | cut -d' ' -f1)"
installed="$(cat "$stamp_file" 2>/dev/null || true)"
if [ "$installed" = "$pyproject_sum $spec" ] \
    || { [ "$spec" = '.' ] && [ "$installed" = "$pyproject_sum .[test]" ]; }; then
    log ".venv is up to date"
else
    log "pip install -e '$spec'"
    .venv/bin/python -m pip install -q -e "$spec"
    printf '%s %s\n' "$pyproject_sum" "$spec" >"$stamp_file"
fi

# --- the lowest nvidia-ml-py --------------------------------------------------------------
# The GPU tests also run on the lowest nvidia-ml-py that pyproject.toml allows. .venv-nvml-min holds
# only that release; a .pth file adds .venv's packages after it, so everything else is shared.
if [ "$WITH_TEST" -eq 1 ]; then
    nvml_min="$(sed -n 's/.*"nvidia-ml-py>=\([0-9.]*\)".*/\1/p' pyproject.toml)"
    [ -n "$nvml_min" ] || die "pyproject.toml has no nvidia-ml-py>= floor"
    if ! .venv-nvml-min/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('nvidia-ml-py') != '$nvml_min')" \
        >/dev/null 2>&1; then
        log "creating .venv-nvml-min with nvidia-ml-py==$nvml_min"
        rm -rf .venv-nvml-min
        "$PYTHON" -m venv .venv-nvml-min
        .venv-nvml-min/bin/python -m pip install -q "nvidia-ml-py==$nvml_min"
    fi
    main_site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    min_site="$(.venv-nvml-min/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    printf 'import site; site.addsitedir(%s)\n' "'$main_site'" >"$min_site/zz-dcim-main-venv.pth"
fi

# --- snmpsim ---------------------------------------------------------------------------
# snmpsim drops root for an unprivileged user, which must be able to read its interpreter:
# hence Debian's /usr/bin/python3 and a world-readable folder outside any home directory.
if [ "$WITH_TEST" -eq 1 ]; then
    if ! "$SNMPSIM_VENV/bin/python" -c 'import snmpsim.commands.responder, pysmi, cryptography' \
        >/dev/null 2>&1 \
        || [ ! -x "$SNMPSIM_VENV/bin/snmpsim-command-responder" ]; then
        log "creating $SNMPSIM_VENV with snmpsim"
        as_root mkdir -p "$SNMPSIM_HOME"
        as_root rm -rf "$SNMPSIM_VENV"
        as_root /usr/bin/python3 -m venv "$SNMPSIM_VENV"
        # snmpsim 1.2 imports pysmi, and pysnmp 7 needs cryptography for SNMPv3 privacy (AES,
        # DES), but both list them only among their dev extras.
        as_root "$SNMPSIM_VENV/bin/python" -m pip install -q snmpsim 'pysmi<3' 'cryptography>=43'
    fi
    as_root chmod -R a+rX "$SNMPSIM_HOME"
fi

log "done"
