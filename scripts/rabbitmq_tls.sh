#!/usr/bin/env bash
# A TLS-enabled RabbitMQ node on this machine, beside the usual broker on 5672, from the Debian
# package that scripts/start_rabbitmq.sh installs, with certificates made here by openssl. For
# the AMQP-over-TLS tests (tests/tests/amqp_tls.rs) and for trying amqps:// by hand.
#
#   scripts/rabbitmq_tls.sh start     make the certificates, start the node, wait (does nothing
#                                     when it already runs)
#   scripts/rabbitmq_tls.sh stop      stop the node, wait for its process, remove everything
#   scripts/rabbitmq_tls.sh url       the amqps:// URL (guest, loopback)
#   scripts/rabbitmq_tls.sh dir       the directory of the certificates
#
# The node is `rpc-tls@<host>`: TLS only, on 127.0.0.1:5691 (no plain AMQP listener),
# distribution port 25691, its own data, log and pid file under $RPC_TLS_DIR (default
# /tmp/rpc-rabbitmq-tls), running as the `rabbitmq` user. It requires a client certificate
# signed by its CA (`verify_peer`, `fail_if_no_peer_cert`), and accepts the logins PLAIN (URL
# user and password) and EXTERNAL (plugin rabbitmq_auth_mechanism_ssl: the user is the client
# certificate's common name, `rpc-tls-client`, a user made here with no password).
#
# Certificates in $RPC_TLS_DIR/certs (PEM; keys readable by root and the rabbitmq user only):
#   ca.pem                      the CA that signed the node's and the client's certificates
#   server.pem, server.key      the node's (CN localhost, SAN localhost and 127.0.0.1)
#   client.pem, client.key      a client's (CN rpc-tls-client)
#   other-ca.pem                another CA, trusted by nobody here
#   other-client.pem, .key      a client certificate that other CA signed
# Needs root (as start_rabbitmq.sh when it installs) and openssl.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/usr/lib/rabbitmq/bin"
cd "$(dirname "$0")/.."
source scripts/rabbitmq_node.sh

BASE="${RPC_TLS_DIR:-/tmp/rpc-rabbitmq-tls}"
CERTS="$BASE/certs"
HOST="$(hostname -s)"
NODE="rpc-tls@$HOST"
PORT=5691
DIST_PORT=25691
CLIENT_CN=rpc-tls-client
START_LIMIT=120 # seconds for the node to boot
STOP_LIMIT=60   # seconds for its process to exit

say() { echo "rabbitmq_tls: $*" >&2; }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        say "run as root (the node runs as the rabbitmq user)"
        exit 1
    fi
}

ctl() { rabbitmqctl -q -n "$NODE" "$@"; }

alive() {
    local pid
    [ -s "$BASE/pid" ] || return 1
    pid="$(cat "$BASE/pid")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# A key and a certificate NAME signed by the CA ISSUER (self-signed when ISSUER is "self").
make_cert() {
    local name=$1 cn=$2 issuer=$3 ext=$4
    openssl req -new -newkey rsa:2048 -nodes -keyout "$CERTS/$name.key" \
        -subj "/CN=$cn/O=rpc tests" -out "$CERTS/$name.csr" 2>/dev/null
    if [ "$issuer" = self ]; then
        openssl x509 -req -in "$CERTS/$name.csr" -signkey "$CERTS/$name.key" -days 2 \
            -extfile <(printf '%s\n' "$ext") -out "$CERTS/$name.pem" 2>/dev/null
    else
        openssl x509 -req -in "$CERTS/$name.csr" -CA "$CERTS/$issuer.pem" \
            -CAkey "$CERTS/$issuer.key" -CAcreateserial -days 2 \
            -extfile <(printf '%s\n' "$ext") -out "$CERTS/$name.pem" 2>/dev/null
    fi
    rm -f "$CERTS/$name.csr"
}

make_certs() {
    rm -rf "$CERTS"
    mkdir -p "$CERTS"
    local ca='basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign'
    local server='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1'
    local client='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth'
    make_cert ca "rpc test CA" self "$ca"
    make_cert server localhost ca "$server"
    make_cert client "$CLIENT_CN" ca "$client"
    make_cert other-ca "another CA" self "$ca"
    make_cert other-client "$CLIENT_CN" other-ca "$client"
    rm -f "$CERTS"/*.srl
    chown -R rabbitmq:rabbitmq "$CERTS"
    chmod 600 "$CERTS"/*.key
}

write_config() {
    cat > "$BASE/rabbitmq.conf" <<EOF
listeners.tcp = none
listeners.ssl.default = 127.0.0.1:$PORT
ssl_options.cacertfile = $CERTS/ca.pem
ssl_options.certfile = $CERTS/server.pem
ssl_options.keyfile = $CERTS/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
ssl_cert_login_from = common_name
EOF
    echo '[rabbitmq_auth_mechanism_ssl].' > "$BASE/enabled_plugins"
}

launch() {
    launch_node "$BASE" "$NODE" \
        RABBITMQ_DIST_PORT="$DIST_PORT" RABBITMQ_CONFIG_FILE="$BASE/rabbitmq.conf"
}

await_node() { await_node_started "$BASE" "$NODE" "$START_LIMIT"; }

stop_node() {
    local pid deadline=$((SECONDS + STOP_LIMIT))
    if alive; then
        pid="$(cat "$BASE/pid")"
        ctl stop >/dev/null 2>&1 || true
        while kill -0 "$pid" 2>/dev/null; do
            if ((SECONDS >= deadline)); then
                say "the node (pid $pid) still runs after ${STOP_LIMIT} s: SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
            fi
            sleep 0.2
        done
    fi
    rm -rf "$BASE"
}

start() {
    need_root
    # Running, with certificates valid for at least another hour (they are made for 2 days):
    # nothing to do.
    if alive && [ -s "$CERTS/client.key" ] &&
        openssl x509 -checkend 3600 -noout -in "$CERTS/server.pem" >/dev/null 2>&1; then
        say "already running on 127.0.0.1:$PORT"
        return 0
    fi
    ./scripts/install_debian.sh openssl openssl
    [ -r /var/lib/rabbitmq/.erlang.cookie ] || {
        say "no /var/lib/rabbitmq/.erlang.cookie (run scripts/start_rabbitmq.sh first)"
        exit 1
    }
    stop_node
    local began=$SECONDS
    mkdir -p "$BASE"
    make_certs
    write_config
    launch
    await_node
    ctl add_user "$CLIENT_CN" "unused-$RANDOM$RANDOM" >/dev/null
    ctl clear_password "$CLIENT_CN" >/dev/null
    ctl set_permissions -p / "$CLIENT_CN" '.*' '.*' '.*' >/dev/null
    say "up in $((SECONDS - began)) s on 127.0.0.1:$PORT (TLS only), certificates in $CERTS"
}

case "${1:-}" in
start) start ;;
stop) need_root && stop_node && say "stopped and removed" ;;
url) echo "amqps://guest:guest@127.0.0.1:$PORT/%2f" ;;
dir) echo "$CERTS" ;;
*)
    sed -n '2,28p' "$0" >&2
    exit 2
    ;;
esac
