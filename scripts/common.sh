# Shared by the run_*.sh scripts: build the apps in release and find their binaries.
# Sourced, not run.

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${CARGO_TARGET_DIR:-$repo_root/target}/release"

# build_apps: builds the consumer, producer and call binaries (release), quietly.
build_apps() {
    echo "building the apps (release)..." >&2
    (cd "$repo_root" && cargo build --release --quiet -p rpc-apps --bins)
}

# wait_for_port PORT [SECONDS]: waits until something listens on 127.0.0.1:PORT.
wait_for_port() {
    local port=$1 deadline=$((SECONDS + ${2:-30}))
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "nothing listens on port $port after ${2:-30} s" >&2
            return 1
        fi
        sleep 0.2
    done
}

# free_port: prints a TCP port that nothing on 127.0.0.1 listens on.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
