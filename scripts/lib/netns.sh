# shellcheck shell=bash
# Network-namespace helpers for the shell tests (sourced, bash >= 5).
#
# Everything a test creates (namespaces, background processes, a work dir) is
# recorded here so that harness_cleanup removes exactly that and nothing else:
# tests share the machine with other tests, so nothing is ever removed by a
# broad name match.
#
#   source scripts/lib/netns.sh
#   harness_init mytag          # work dir, EXIT/INT/TERM trap, leftovers of an earlier run of mytag
#   netns_add mytag-a; netns_add mytag-b
#   netns_veth mytag-a out0 198.51.100.1/24 mytag-b out0 198.51.100.2/24
#   netns_local_addr mytag-a 10.1.0.1
#   netns_ping mytag-a 10.1.0.1 10.3.0.1 5      # prints the number of replies
#
# Functions: harness_init harness_workdir harness_trap harness_on_exit harness_cleanup
#   harness_log harness_die harness_wait_until harness_spawn harness_kill
#   netns_add netns_del netns_purge netns_cleanup netns_exec netns_veth netns_addr
#   netns_local_addr netns_no_offload netns_forwarding netns_route netns_has_ipv4
#   netns_ping netns_ping_start netns_ping_wait netns_udp_stream
#   netns_capture_start netns_capture_stop capture_count capture_contains

[[ -n ${_HARNESS_NETNS_SH:-} ]] && return 0
_HARNESS_NETNS_SH=1

HARNESS_TAG=${HARNESS_TAG:-harness}
HARNESS_DIR=${HARNESS_DIR:-}       # work dir of this test (harness_workdir)
HARNESS_RC=0                       # exit status seen by harness_cleanup, for cleanup hooks
HARNESS_LAST_PID=                  # set by harness_spawn
HARNESS_PYTHON=${HARNESS_PYTHON:-/usr/bin/python3}
NETNS_CREATED=()                   # namespaces this shell created
HARNESS_PIDS=()                    # background processes this shell started
HARNESS_CLEANUPS=()                # hooks, run last-registered first
_HARNESS_OWN_DIR=0

harness_log() { printf '[%s] %s\n' "$HARNESS_TAG" "$*" >&2; }
harness_die() { harness_log "FAIL: $*"; exit 1; }

# harness_init TAG: the usual start of a test: tag, work dir, trap, and removal of
# namespaces named TAG-* left behind by an earlier, killed run of the same test.
harness_init() {
    HARNESS_TAG=$1
    netns_purge "$HARNESS_TAG-"
    harness_workdir "$HARNESS_TAG"
    harness_trap
}

# harness_workdir TAG: a private work dir, removed at exit (kept if HARNESS_KEEP=1).
harness_workdir() {
    [[ -n $HARNESS_DIR && -d $HARNESS_DIR ]] && return 0
    HARNESS_DIR=$(mktemp -d "/tmp/${1:-$HARNESS_TAG}.XXXXXX") || harness_die "mktemp failed"
    _HARNESS_OWN_DIR=1
}

# harness_trap: run harness_cleanup once at exit, also on Ctrl-C / TERM.
harness_trap() {
    trap harness_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# harness_on_exit FUNC: register a cleanup hook (called with HARNESS_RC set).
harness_on_exit() {
    local f
    for f in "${HARNESS_CLEANUPS[@]}"; do [[ $f == "$1" ]] && return 0; done
    HARNESS_CLEANUPS+=("$1")
}

harness_cleanup() {
    HARNESS_RC=$?
    set +e
    trap - EXIT INT TERM
    local i
    for ((i = ${#HARNESS_CLEANUPS[@]} - 1; i >= 0; i--)); do "${HARNESS_CLEANUPS[i]}"; done
    HARNESS_CLEANUPS=()
    for i in "${HARNESS_PIDS[@]}"; do harness_kill "$i" 2; done
    netns_cleanup
    if ((_HARNESS_OWN_DIR)) && [[ -n $HARNESS_DIR ]]; then
        if [[ ${HARNESS_KEEP:-0} == 1 ]]; then
            harness_log "kept work dir $HARNESS_DIR"
        else
            rm -rf -- "$HARNESS_DIR"
        fi
    fi
    return "$HARNESS_RC"
}

# harness_wait_until SECONDS CMD...: poll CMD (every 20 ms) until it succeeds; 1 on timeout.
harness_wait_until() {
    local timeout=$1; shift
    local now=${EPOCHREALTIME/[.,]/} int=${timeout%.*} frac=0 deadline
    if [[ $timeout == *.* ]]; then frac=${timeout#*.}000000; frac=$((10#${frac:0:6})); fi
    deadline=$((now + 10#${int:-0} * 1000000 + frac))
    while :; do
        "$@" && return 0
        now=${EPOCHREALTIME/[.,]/}
        ((now >= deadline)) && return 1
        sleep 0.02
    done
}

# harness_spawn OUTFILE CMD...: run CMD in the background (stdout+stderr to OUTFILE),
# remember its PID for cleanup; the PID is in HARNESS_LAST_PID. Its stdin is /dev/null,
# or the file/FIFO named by HARNESS_STDIN (for programs that exit on EOF, e.g. testpmd).
harness_spawn() {
    local out=$1; shift
    "$@" <"${HARNESS_STDIN:-/dev/null}" >"$out" 2>&1 &
    HARNESS_LAST_PID=$!
    HARNESS_PIDS+=("$HARNESS_LAST_PID")
}

# harness_kill PID [GRACE_SECONDS] [SIGNAL]: signal (TERM) a process we started, KILL after grace.
harness_kill() {
    local pid=$1 grace=${2:-5} sig=${3:-TERM} p keep=()
    for p in "${HARNESS_PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    HARNESS_PIDS=("${keep[@]}")
    # Every step may race with the process exiting (or run in a subshell, where it is
    # not our child): none of them may fail under set -e.
    if kill -0 "$pid" 2>/dev/null; then
        kill -s "$sig" "$pid" 2>/dev/null || true
        if ! harness_wait_until "$grace" _harness_gone "$pid"; then
            harness_log "pid $pid did not exit after $sig within ${grace}s, killing"
            kill -s KILL "$pid" 2>/dev/null || true
            harness_wait_until 2 _harness_gone "$pid" || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    return 0
}
_harness_gone() { ! kill -0 "$1" 2>/dev/null || [[ $(ps -o stat= -p "$1" 2>/dev/null) == Z* ]]; }

# ---------------------------------------------------------------- namespaces

# netns_add NAME: a new namespace, NAME starting with "$HARNESS_TAG-", with lo up and IPv6
# off (keeps captures free of ND/MLD noise; NETNS_IPV6=1 keeps IPv6 for tests that use it).
netns_add() {
    local ns=$1
    # Team rule: every name starts with the test's tag, so tests never collide.
    [[ $ns == "$HARNESS_TAG-"* ]] || harness_die "netns_add: '$ns' does not start with '$HARNESS_TAG-' (harness_init TAG first)"
    ip netns add "$ns" || harness_die "cannot create namespace $ns (exists already?)"
    NETNS_CREATED+=("$ns")
    ip -n "$ns" link set lo up
    if [[ ${NETNS_IPV6:-0} != 1 ]]; then
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1 || true
    fi
    return 0
}

# netns_del NAME: delete one namespace this shell created, after ending what still runs in it.
netns_del() {
    local ns=$1 n keep=() pid
    for n in "${NETNS_CREATED[@]}"; do [[ $n == "$ns" ]] || keep+=("$n"); done
    if ((${#keep[@]} == ${#NETNS_CREATED[@]})); then
        harness_log "netns_del: $ns was not created by this test, leaving it"
        return 1
    fi
    NETNS_CREATED=("${keep[@]}")
    # Processes left in our own namespace were started by this test (PIDs from the kernel).
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done
    if ! harness_wait_until 3 _netns_empty "$ns"; then
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    fi
    ip netns delete "$ns" 2>/dev/null || true
    return 0
}
_netns_empty() { [[ -z $(ip netns pids "$1" 2>/dev/null) ]]; }

# netns_purge PREFIX: remove namespaces named PREFIX* left by an earlier, killed run of
# the same test (the prefix is the test's own tag, so nothing else matches).
netns_purge() {
    local prefix=$1 ns pid
    [[ ${#prefix} -ge 3 ]] || harness_die "netns_purge: prefix '$prefix' too short"
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
        [[ $ns == "$prefix"* ]] || continue
        harness_log "removing leftover namespace $ns"
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns delete "$ns" 2>/dev/null || true
    done
    return 0
}

netns_cleanup() {
    local i
    for ((i = ${#NETNS_CREATED[@]} - 1; i >= 0; i--)); do netns_del "${NETNS_CREATED[i]}"; done
    NETNS_CREATED=()
}

netns_exec() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# netns_veth NS1 IF1 ADDR1 NS2 IF2 ADDR2 [MAC1 MAC2]: a veth pair created directly in
# the two namespaces (no name clash in the root namespace). ADDR "-" = no address.
# Offloads are switched off so AF_PACKET readers (DPDK net_af_packet, tcpdump) see
# complete checksums and no GSO super-frames.
netns_veth() {
    local ns1=$1 if1=$2 a1=$3 ns2=$4 if2=$5 a2=$6 m1=${7:-} m2=${8:-}
    local o1=() o2=()
    [[ -n $m1 ]] && o1=(address "$m1")
    [[ -n $m2 ]] && o2=(address "$m2")
    ip link add name "$if1" netns "$ns1" "${o1[@]}" type veth peer name "$if2" netns "$ns2" "${o2[@]}" ||
        harness_die "veth $ns1/$if1 -- $ns2/$if2 failed"
    netns_no_offload "$ns1" "$if1"
    netns_no_offload "$ns2" "$if2"
    [[ $a1 != - && -n $a1 ]] && netns_addr "$ns1" "$if1" "$a1"
    [[ $a2 != - && -n $a2 ]] && netns_addr "$ns2" "$if2" "$a2"
    ip -n "$ns1" link set "$if1" up
    ip -n "$ns2" link set "$if2" up
}

netns_addr() { ip -n "$1" addr add "$3" dev "$2" || harness_die "address $3 on $1/$2 failed"; }

netns_no_offload() {
    command -v ethtool >/dev/null || harness_die "ethtool missing (scripts/setup.sh installs it): veth checksum offload must be off"
    ip netns exec "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
    return 0
}

# netns_local_addr NS ADDR[/LEN] [IF]: an address the namespace owns without a link,
# e.g. one inside the local traffic selector (charon needs one, see STRONGSWAN.md).
# Uses a dummy interface when the kernel has them; else ADDR/32 on lo (these kernels
# have no dummy driver, and a prefix on lo would make the whole prefix local).
netns_local_addr() {
    local ns=$1 addr=$2 ifname=${3:-dummy0}
    if ip -n "$ns" link show "$ifname" >/dev/null 2>&1 ||
        ip -n "$ns" link add "$ifname" type dummy 2>/dev/null; then
        ip -n "$ns" addr add "$addr" dev "$ifname" || harness_die "address $addr on $ns/$ifname failed"
        ip -n "$ns" link set "$ifname" up
    else
        ip -n "$ns" addr add "${addr%/*}/32" dev lo || harness_die "address $addr on $ns/lo failed"
    fi
}

netns_forwarding() {
    ip netns exec "$1" sysctl -qw "net.ipv4.ip_forward=${2:-1}" >/dev/null || harness_die "ip_forward in $1 failed"
}

# netns_route NS PREFIX VIA [SRC]
netns_route() {
    local src=()
    [[ -n ${4:-} ]] && src=(src "$4")
    ip -n "$1" route add "$2" via "$3" "${src[@]}" || harness_die "route $2 via $3 in $1 failed"
}

# netns_has_ipv4 NS IF: true when IF carries an IPv4 address.
netns_has_ipv4() { [[ -n $(ip -n "$1" -4 -o addr show dev "$2" 2>/dev/null) ]]; }

# ---------------------------------------------------------------- traffic

# netns_ping NS SRC DST [COUNT]: prints the number of echo replies (bounded: -W 1, 0.05 s apart).
netns_ping() {
    local out
    out=$(ip netns exec "$1" ping -n -q -c "${4:-5}" -i 0.05 -W 1 -I "$2" "$3" 2>&1) || true
    sed -n 's/.* \([0-9][0-9]*\) received.*/\1/p' <<<"$out" | grep . || echo 0
}

# netns_ping_start NS SRC DST COUNT [INTERVAL_S]: a background stream of COUNT pings
# (default every 10 ms) for "no loss while X happens"; PID in HARNESS_LAST_PID.
netns_ping_start() {
    local ns=$1 saddr=$2 dst=$3 count=$4 interval=${5:-0.01} out
    out=$(mktemp "${HARNESS_DIR:-/tmp}/ping.XXXXXX")
    harness_spawn "$out" ip netns exec "$ns" ping -n -q -i "$interval" -c "$count" -W 1 -I "$saddr" "$dst"
    _HARNESS_PING_LOG[$HARNESS_LAST_PID]=$out
}
declare -gA _HARNESS_PING_LOG=()

# netns_ping_wait PID [TIMEOUT_S]: wait for the stream to finish by itself (stopping it
# early would count the request in flight as lost; after TIMEOUT_S, default 30, it is
# interrupted) and print "received transmitted".
netns_ping_wait() {
    local pid=$1 log=${_HARNESS_PING_LOG[$1]:-/dev/null}
    harness_wait_until "${2:-30}" _harness_gone "$pid" || harness_log "ping $pid still running after ${2:-30}s, interrupting it"
    harness_kill "$pid" 3 INT
    sed -n 's/^\([0-9][0-9]*\) packets transmitted, \([0-9][0-9]*\) received.*/\2 \1/p' "$log" | grep . || echo "0 0"
    [[ $log == /dev/null ]] || rm -f "$log"
}

# netns_udp_stream SRC_NS SRC DST_NS DST [COUNT] [SIZE] [PORT]: send COUNT datagrams of
# SIZE bytes (paced, ~2000/s) from SRC to DST:PORT and print "received sent"; the
# payload starts with the marker HARNESS_UDP_MARKER so a capture can be searched for
# plaintext. The receiver counts distinct sequence numbers and stops at COUNT or after
# 5 s without a datagram. IPv4 or IPv6 (by the addresses).
HARNESS_UDP_MARKER=${HARNESS_UDP_MARKER:-IPSECGW-PLAINTEXT-MARKER}
netns_udp_stream() {
    local sns=$1 saddr=$2 dns=$3 dst=$4 count=${5:-500} size=${6:-200} port=${7:-5001}
    local dir=${HARNESS_DIR:-/tmp} rpid ready
    ready=$(mktemp "$dir/udp-ready.XXXXXX"); rm -f "$ready"
    harness_spawn "$ready.out" ip netns exec "$dns" "$HARNESS_PYTHON" -c '
import socket, sys
addr, port, count, marker, ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].encode(), sys.argv[5]
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind((addr, port))
s.settimeout(5.0)
open(ready, "w").close()
seen = set()
while len(seen) < count:
    try:
        data = s.recv(65535)
    except socket.timeout:
        break
    if data.startswith(marker):
        seen.add(int(data[len(marker):len(marker) + 8]))
print(len(seen))
' "$dst" "$port" "$count" "$HARNESS_UDP_MARKER" "$ready"
    rpid=$HARNESS_LAST_PID
    if ! harness_wait_until 5 test -e "$ready"; then
        harness_kill "$rpid" 1
        harness_log "udp receiver did not start: $(cat "$ready.out")"
        echo "0 0"; return 1
    fi
    ip netns exec "$sns" "$HARNESS_PYTHON" -c '
import socket, sys, time
src, dst, port, count, size, marker = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6].encode()
s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
for i in range(count):
    p = marker + b"%08d" % i
    s.sendto(p + b"x" * max(0, size - len(p)), (dst, port))
    time.sleep(0.0005)
' "$saddr" "$dst" "$port" "$count" "$size" "$HARNESS_UDP_MARKER"
    harness_wait_until 10 _harness_gone "$rpid" || true
    harness_kill "$rpid" 1
    echo "$(grep -E '^[0-9]+$' "$ready.out" || echo 0) $count"
    rm -f "$ready" "$ready.out"
}

# netns_capture_start NS IF FILE [FILTER...]: tcpdump into FILE; waits until it listens.
# The PID is in HARNESS_LAST_PID (stop it with netns_capture_stop PID).
netns_capture_start() {
    local ns=$1 ifname=$2 file=$3; shift 3
    harness_spawn "$file.log" ip netns exec "$ns" tcpdump -Z root -i "$ifname" -nn -U --immediate-mode -s 0 -w "$file" "$@"
    harness_wait_until 5 grep -q "listening on" "$file.log" || {
        harness_log "tcpdump on $ns/$ifname did not start: $(cat "$file.log")"; return 1; }
}

# netns_capture_stop PID: SIGINT lets tcpdump flush the file.
netns_capture_stop() { harness_kill "$1" 3 INT; }

# capture_count FILE [FILTER...]: number of packets in FILE matching FILTER.
capture_count() {
    local file=$1; shift
    tcpdump -nn -r "$file" "$@" 2>/dev/null | wc -l
}

# capture_contains FILE STRING: true if STRING occurs anywhere in the captured bytes.
capture_contains() { grep -aqF -- "$2" "$1"; }
