#!/usr/bin/env bash
# `npm test`: make sure the system tools the tests drive are installed, then hand over to mocha.
# Arguments are passed to mocha unchanged (e.g. `bash test/run.sh test/support/services.test.ts`).
set -euo pipefail
cd "$(dirname "$0")/.."

# nats-server and sshd live in /usr/sbin, which is not on a non-root PATH.
export PATH="$PATH:/usr/sbin:/sbin"

PG_BIN=/usr/lib/postgresql/15/bin

# "tool package" pairs; absolute tools are checked as files, the others on PATH.
REQUIRED_TOOLS=(
  "$PG_BIN/initdb postgresql-15"
  "$PG_BIN/pg_ctl postgresql-15"
  "$PG_BIN/pgbench postgresql-15"
  "pgbench postgresql-15"
  "$PG_BIN/psql postgresql-client-15"
  "psql postgresql-client-15"
  "nats-server nats-server"
  "/usr/sbin/sshd openssh-server"
  "ssh openssh-client"
  "ssh-keygen openssh-client"
  "sshpass sshpass"
  "openssl openssl"
  "python3 python3"
)

have_tool() {
  if [[ $1 == /* ]]; then [[ -x $1 ]]; else command -v "$1" >/dev/null 2>&1; fi
}

# Prints "missing-tool package" lines.
missing_tools() {
  local entry tool
  for entry in "${REQUIRED_TOOLS[@]}"; do
    tool=${entry%% *}
    have_tool "$tool" || echo "$entry"
  done
}

install_packages() {
  local -a as_root=()
  if [[ $EUID -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      as_root=(sudo -n)
    else
      echo "test/run.sh: missing tools: $MISSING_TOOLS_LIST" >&2
      echo "Install them as root, then run the tests again:" >&2
      echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $*" >&2
      exit 1
    fi
  fi
  echo "test/run.sh: installing $* (missing: $MISSING_TOOLS_LIST)" >&2
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

MISSING=$(missing_tools)
if [[ -n $MISSING ]]; then
  MISSING_TOOLS_LIST=$(cut -d' ' -f1 <<<"$MISSING" | paste -sd' ')
  mapfile -t PACKAGES < <(cut -d' ' -f2 <<<"$MISSING" | sort -u)
  install_packages "${PACKAGES[@]}"
  STILL_MISSING=$(missing_tools)
  if [[ -n $STILL_MISSING ]]; then
    echo "test/run.sh: still missing after install:" >&2
    echo "$STILL_MISSING" >&2
    exit 1
  fi
fi

# sshd refuses to start as root without its privilege separation directory.
if [[ $EUID -eq 0 ]]; then
  mkdir -p /run/sshd
fi

# Mocha adds file arguments to the spec globs of .mocharc.json instead of replacing them
# so a run scoped to some files uses a copy of the config without "spec".
takes_value() {
  case $1 in
    --config | --extension | --fgrep | -f | --file | --global | --globals | --grep | -g | --ignore | \
      --jobs | -j | --node-option | -n | --package | --reporter | -R | --reporter-option | \
      --reporter-options | -O | --require | -r | --retries | --slow | -s | --spec | --timeout | \
      --timeouts | -t | --ui | -u | --watch-files | --watch-ignore) return 0 ;;
    *) return 1 ;;
  esac
}

names_spec_files() {
  local prev="" arg
  for arg in "$@"; do
    [[ $arg == --spec || $arg == --spec=* ]] && return 0
    if [[ $arg != -* ]] && ! takes_value "$prev"; then return 0; fi
    prev=$arg
  done
  return 1
}

if [[ $# -gt 0 ]] && names_spec_files "$@"; then
  SCOPED_CONFIG=$(mktemp /tmp/vigil-mocharc-XXXXXX.json)
  trap 'rm -f "$SCOPED_CONFIG"' EXIT
  node -e 'const c = JSON.parse(require("fs").readFileSync(".mocharc.json", "utf8")); delete c.spec;
    process.stdout.write(JSON.stringify(c));' >"$SCOPED_CONFIG"
  # Not exec: the trap removes the temporary config when mocha is done.
  npx mocha --config "$SCOPED_CONFIG" "$@"
  exit 0
fi

exec npx mocha "$@"
