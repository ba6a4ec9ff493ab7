#!/usr/bin/env bash
# One entry point for a working checkout: sets up everything the project needs
# (a virtualenv with runner and its test tools, a Chromium for page-title, and
# for the tests a PostgreSQL server), then runs what you asked for.
#
#   scripts/dev.sh serve [CONFIG]    set up, then `runner serve CONFIG` (default configs/site-checks.yaml)
#   scripts/dev.sh test [PYTEST...]  set up, then run the whole test suite
#   scripts/dev.sh setup             set up only
#
# Safe to run again: each step is skipped when it is already done.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${RUNNER_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

apt_install() {
    # Debian packages are a fallback we can only take as root.
    if is_root && command -v apt-get >/dev/null; then
        say "installing Debian packages: $*"
        if [ -z "${_APT_UPDATED:-}" ]; then
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            _APT_UPDATED=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
        return 0
    fi
    return 1
}

ensure_python() {
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install Python 3.11 or newer (Debian 12: apt-get install python3)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "runner needs Python >= 3.11; $PYTHON is $("$PYTHON" --version 2>&1). Set PYTHON=/path/to/python3.11"
}

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating virtualenv $VENV"
        if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
            # Debian splits venv (and ensurepip) out of python3 itself.
            rm -rf "$VENV"
            apt_install python3-venv || die "python3 -m venv failed; as root run: apt-get install python3-venv"
            "$PYTHON" -m venv "$VENV"
        fi
    fi
    # Reinstall only when the project's metadata changed since the last install.
    # Only runner goes into this environment, so `runner plugins` lists what
    # runner ships; each distribution in plugins/ is installed into a folder
    # of its own by its test (tests/test_plugin_distributions.py).
    local stamp="$VENV/.runner-installed"
    local want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        say "installing runner and its test tools into $VENV"
        # Metadata of an earlier editable install (src/runner.egg-info from
        # before the distribution was named runner-daemon) sits on sys.path
        # and would register every entry point twice; pip writes it anew.
        rm -rf src/*.egg-info
        # The same checkout installed under the old name would register them
        # twice too: pip does not remove a distribution that was renamed.
        if "$VENV/bin/python" -m pip show runner 2>/dev/null \
            | grep -qxF "Editable project location: $ROOT"; then
            "$VENV/bin/python" -m pip uninstall -y -q runner
        fi
        "$VENV/bin/python" -m pip install -q --upgrade pip
        "$VENV/bin/python" -m pip install -q -e ".[test]"
        echo "$want" > "$stamp"
    fi
}

ensure_editor_tools() {
    # The schema tests drive yaml-language-server (the engine of VS Code's YAML
    # extension) as an editor does. Its version is pinned in
    # tests/editor/package-lock.json; `npm ci` installs exactly that into
    # tests/editor/node_modules, nothing global.
    local dir=tests/editor stamp=tests/editor/node_modules/.runner-installed want
    if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
        apt_install nodejs npm \
            || { say "no npm: the editor schema tests will be skipped (install nodejs and npm)"; return 0; }
    fi
    want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        say "installing yaml-language-server into $dir/node_modules"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        echo "$want" > "$stamp"
    fi
}

ensure_browser() {
    # page-title needs a Chromium. Playwright's own download is tried last:
    # it fails on machines without general internet access.
    if "$VENV/bin/python" -m runner.builtins.browser.page_title --find-browser >/dev/null 2>&1; then
        return 0
    fi
    if apt_install chromium; then
        "$VENV/bin/python" -m runner.builtins.browser.page_title --find-browser >/dev/null && return 0
    fi
    say "trying Playwright's own browser download"
    if "$VENV/bin/python" -m playwright install chromium; then
        return 0
    fi
    die "no Chromium found for page-title. Install one (Debian: sudo apt-get install chromium) or set RUNNER_CHROMIUM=/path/to/chromium"
}

has_postgresql_server() {
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

ensure_postgresql() {
    # The history tests start their own PostgreSQL server from Debian's binaries
    # (no cluster of the system's is used; one apt may start does no harm).
    has_postgresql_server && return 0
    if apt_install postgresql && has_postgresql_server; then
        return 0
    fi
    # Not fatal: only the PostgreSQL tests need it (skipped locally, failed under CI).
    say "no PostgreSQL server found for the history tests; install it once: sudo apt-get install postgresql"
}

ensure_prometheus() {
    # tests/test_prometheus.py starts Debian's Prometheus itself (its own config
    # and storage in a temp dir, on 127.0.0.1) and lints with promtool; the
    # package's own service is not used (in containers policy-rc.d keeps it
    # from starting; on a host with systemd, `systemctl disable --now prometheus`).
    command -v prometheus >/dev/null && command -v promtool >/dev/null && return 0
    apt_install prometheus && return 0
    # Not fatal: like PostgreSQL, skipped locally and failed under CI.
    say "the Prometheus scrape test needs: sudo apt-get install prometheus"
}

ensure_bench_peers() {
    # tests/bench/ run each benchmark at tiny sizes against its real
    # peers (nginx, blackbox_exporter, socat), so that none of them can rot.
    # The burst test (tests/test_bursts.py) reads backlogs with ss and runs
    # the daemon in a network namespace of its own (ip, unshare, nsenter).
    local missing=() pair
    for pair in nginx:nginx-light prometheus-blackbox-exporter:prometheus-blackbox-exporter socat:socat ss:iproute2 ip:iproute2; do
        command -v "${pair%%:*}" >/dev/null || [ -x "/usr/sbin/${pair%%:*}" ] || missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    # shellcheck disable=SC2207  # package names have no spaces
    missing=($(printf '%s\n' "${missing[@]}" | sort -u))
    apt_install "${missing[@]}" && return 0
    # Not fatal: like PostgreSQL, skipped locally and failed under CI.
    say "the benchmark smoke tests need: sudo apt-get install ${missing[*]}"
}

setup() {
    ensure_python
    ensure_venv
    ensure_browser
    ensure_editor_tools
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    setup) setup ;;
    serve)
        setup
        config=${1:-configs/site-checks.yaml}
        [ $# -gt 0 ] && shift
        exec "$VENV/bin/runner" serve "$config" "$@"
        ;;
    test)
        setup
        ensure_postgresql  # only the tests need a PostgreSQL server
        ensure_prometheus  # and a Prometheus server
        ensure_bench_peers
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    *)
        sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
