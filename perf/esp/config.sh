# shellcheck shell=bash
# ipsecgw configs for the ESP pcap test (scripts/tests/esp_pcap.sh) and the ESP
# benchmark (perf/run.sh). Matches perf/esp/esp_pcap.py: the gateway under test is
# 198.51.100.1 (MAC 02:00:00:00:00:01 on both ports), the peer 198.51.100.2 (over
# IPv6 2001:db8:100::1 and ::2, ESP_V6=1), plaintext flows 10.1.0.x -> 10.2.0.x.
#
#   esp_key ALG [DIR [K]]      hex key||salt (fixed test key: these runs are local); DIR 0 in,
#                              1 out; tunnel K's has its second byte increased by K
#   esp_config FILE DIR ALG UDP WINDOW EAL_ARG...
#       DIR=encap: port 0 "inside" (plaintext in), port 1 "outside" (ESP out)
#       DIR=decap: port 0 "outside" (ESP in), port 1 "inside" (plaintext out, via 10.9.0.254)
#       env ESP_SAS=2: a second SA "bench2" (ESP_SPI_IN2/ESP_SPI_OUT2, the same keys and
#       selectors: inbound ESP of another SPI for a second worker);
#       ESP_TUNNELS=N (1-64): N tunnels share the flows in turn instead of one SA taking
#       them all: flow j (to 10.2.0.(2 + j), j < ESP_FLOWS = 64) is tunnel k = j % N's, whose SPIs are
#       ESP_SPI_IN/OUT + 0x100 k and whose keys esp_key's with k (esp_pcaps seals with
#       them: esp_pcap.py --sas); ESP_MBUFS ([dpdk].mbufs),
#       ESP_ENCRYPT ([dpdk].encrypt: "owner" or "any-worker"; unset: the key is left out, the
#       gateway's default "owner", and builds older than the key still read the file)
#   esp_pcaps DIR SPI...       for each of $SIZES (64..1400, imix, or imixr: IMIX in a random
#                              order) and $ALGS: DIR/plain-SIZE.pcap
#                              and DIR/esp-ALG-SIZE-SPI.pcap (perf/esp/esp_pcap.py, 64 flows)
#   esp_gw_exec BIN DIR ALG WINDOW TOML LCORES EAL_MEM_ARG... -- IN...
#                              exec ipsecgw BIN busy-polling on net_pcap (one infinite rx queue
#                              per IN) into net_null; with two INs two SAs (ESP_SAS=2), one each
#   ESP_UDP=1                  esp_pcaps and esp_gw_exec: ESP in UDP 4500 (RFC 3948, NAT
#                              traversal, what strongSwan's kernel-libipsec always sends)
#   ESP_V6=1                   esp_config and esp_pcaps: an IPv6 outer link, the gateway
#                              2001:db8:100::1, the peer 2001:db8:100::2
#   ESP_NEIGHBORS              the --neighbor flags ipsecgw needs (peer and inner next hop),
#                              set by esp_config for its outer link
esp_outer() { # -> "GATEWAY PEER PREFIX_LEN" of the outer link
    if [[ ${ESP_V6:-0} == 1 ]]; then echo "2001:db8:100::1 2001:db8:100::2 64"; else echo "198.51.100.1 198.51.100.2 24"; fi
}
esp_neighbors() { # PEER: ESP_NEIGHBORS for the outer link's peer
    ESP_NEIGHBORS=(--neighbor "$1=02:00:00:00:00:02" --neighbor 10.9.0.254=02:00:00:00:00:03)
}
read -r _ ESP_PEER _ < <(esp_outer) && esp_neighbors "$ESP_PEER" && unset ESP_PEER
ESP_SPI_IN=0x1001 ESP_SPI_OUT=0x2002 ESP_SPI_IN2=0x1003 ESP_SPI_OUT2=0x2004
# Flows (and frames) of the benchmark pcaps; esp_pcap.py's FLOWS.
ESP_FLOWS=64

esp_key() {
    local n
    case $1 in aes128gcm) n=20 ;; aes256gcm | chacha20poly1305) n=36 ;; *) echo "esp_key: unknown $1" >&2; return 1 ;; esac
    # in and out keys differ in the first byte: $2 = 0 (in) or 1 (out); tunnels in the second
    printf '%02x%02x' "$((0x40 + ${2:-0}))" "$(((1 + ${3:-0}) & 0xff))"
    for ((i = 2; i < n; i++)); do printf '%02x' "$i"; done
}

# NAME SPI_IN SPI_OUT ALG CFGALG UDP WINDOW LOCAL_TS REMOTE_TS LOCAL REMOTE [K]: tunnel K's
# static SA; the traffic selectors as TOML list items ("10.1.0.0/16", ...)
esp_static_sa() {
    cat <<TOML
[[static_sa]]
name = "$1"
local = "${10}"
remote = "${11}"
encap = "$([[ $6 == 1 ]] && echo udp || echo esp)"
algorithm = "$5"
spi_in = $2
spi_out = $3
key_in = "$(esp_key "$4" 0 "${12:-0}")"
key_out = "$(esp_key "$4" 1 "${12:-0}")"
local_ts = [$8]
remote_ts = [$9]
replay_window = $7

TOML
}

esp_config() {
    local file=$1 dir=$2 alg=$3 udp=$4 window=$5; shift 5
    local eal="" a cfgalg
    for a in "$@"; do eal+="\"$a\", "; done
    case $alg in aes128gcm) cfgalg=aes128gcm16 ;; aes256gcm) cfgalg=aes256gcm16 ;; *) cfgalg=$alg ;; esac
    local p0 p1 lts rts route="" gw peer len
    read -r gw peer len < <(esp_outer)
    esp_neighbors "$peer"
    if [[ $dir == encap ]]; then
        p0='name = "inside"
dpdk_port = 0
addresses = ["10.1.0.1/24"]'
        p1="name = \"outside\"
dpdk_port = 1
addresses = [\"$gw/$len\"]"
        lts='"10.1.0.0/16"' rts='"10.2.0.0/16"'
    else
        p0="name = \"outside\"
dpdk_port = 0
addresses = [\"$gw/$len\"]"
        p1='name = "inside"
dpdk_port = 1
addresses = ["10.9.0.1/24"]'
        lts='"10.2.0.0/16"' rts='"10.1.0.0/16"'
        route='[[route]]
destination = "10.2.0.0/16"
via = "10.9.0.254"
port = "inside"'
    fi
    # Made before the file: a failure inside the heredoc's $(...) would go unnoticed.
    local sas
    if [[ -n ${ESP_TUNNELS:-} ]]; then
        sas=$(esp_tunnel_sas "$dir" "$alg" "$cfgalg" "$udp" "$window" "$gw" "$peer") || return 1
    else
        sas=$(esp_static_sa bench "$ESP_SPI_IN" "$ESP_SPI_OUT" "$alg" "$cfgalg" "$udp" "$window" "$lts" "$rts" "$gw" "$peer")
    fi
    cat >"$file" <<TOML
[dpdk]
eal_args = [${eal%, }]
mbufs = ${ESP_MBUFS:-16383}
${ESP_ENCRYPT:+encrypt = \"$ESP_ENCRYPT\"}

[[port]]
$p0
mac = "02:00:00:00:00:01"

[[port]]
$p1
mac = "02:00:00:00:00:01"

$route

$sas
$(if [[ ${ESP_SAS:-1} == 2 ]]; then esp_static_sa bench2 "$ESP_SPI_IN2" "$ESP_SPI_OUT2" "$alg" "$cfgalg" "$udp" "$window" "$lts" "$rts" "$gw" "$peer"; fi)
TOML
}

# DIR ALG CFGALG UDP WINDOW LOCAL REMOTE: ESP_TUNNELS static SAs, tunnel k selecting the
# flows j = k, k + N, ... (< ESP_FLOWS) by their inner destination 10.2.0.(2 + j)
esp_tunnel_sas() {
    local dir=$1 alg=$2 cfgalg=$3 udp=$4 window=$5 gw=$6 peer=$7 n k j ts lts rts any='"10.1.0.0/16"'
    [[ $ESP_TUNNELS =~ ^[0-9]+$ ]] && n=$((10#$ESP_TUNNELS)) && ((n >= 1 && n <= ESP_FLOWS)) ||
        { echo "esp_config: ESP_TUNNELS=$ESP_TUNNELS: 1 to $ESP_FLOWS" >&2; return 1; }
    [[ ${ESP_SAS:-1} == 1 ]] || { echo "esp_config: ESP_TUNNELS and ESP_SAS=2 do not mix" >&2; return 1; }
    for ((k = 0; k < n; k++)); do
        ts=""
        for ((j = k; j < ESP_FLOWS; j += n)); do ts+="${ts:+, }\"10.2.0.$((2 + j))/32\""; done
        if [[ $dir == encap ]]; then lts=$any rts=$ts; else lts=$ts rts=$any; fi
        esp_static_sa "bench$k" "$((ESP_SPI_IN + 0x100 * k))" "$((ESP_SPI_OUT + 0x100 * k))" "$alg" "$cfgalg" "$udp" "$window" "$lts" "$rts" "$gw" "$peer" "$k"
    done
}

esp_pcaps() {
    local dir=$1 size alg spi sa; shift
    for size in $SIZES; do
        case $size in imix) sa=(--imix) ;; imixr) sa=(--imix --shuffle) ;; *) sa=(--size "$size") ;; esac
        /usr/bin/python3 perf/esp/esp_pcap.py plain "$dir/plain-$size.pcap" "${sa[@]}" --count "$ESP_FLOWS"
        for alg in $ALGS; do
            for spi in "$@"; do
                /usr/bin/python3 perf/esp/esp_pcap.py esp "$dir/esp-$alg-$size-$spi.pcap" --alg "$alg" \
                    --key "$(esp_key "$alg" 0)" --spi "$spi" "${sa[@]}" --count "$ESP_FLOWS" $(esp_pcap_outer) $(esp_pcap_tunnels)
            done
        done
    done
}

esp_pcap_outer() { # esp_pcap.py's flags for ESP_UDP and ESP_V6
    [[ ${ESP_UDP:-0} == 1 ]] && echo --udp
    [[ ${ESP_V6:-0} == 1 ]] && echo --v6
    return 0
}

esp_pcap_tunnels() { # esp_pcap.py's --sas for ESP_TUNNELS (one word a line, as esp_pcap_outer)
    [[ -n ${ESP_TUNNELS:-} ]] && printf '%s\n' --sas "$((10#$ESP_TUNNELS))"
    return 0
}

esp_gw_exec() {
    local bin=$1 dir=$2 alg=$3 window=$4 toml=$5 lcores=$6 eal=() rx="" f; shift 6
    while (($# > 0)) && [[ $1 != -- ]]; do eal+=("$1") && shift; done
    shift
    for f in "$@"; do rx+="rx_pcap=$f,"; done
    (($# < 2)) || export ESP_SAS=2 ESP_MBUFS=32767
    esp_config "$toml" "$dir" "$alg" "${ESP_UDP:-0}" "$window" --lcores "$lcores" --no-pci "${eal[@]}" \
        "--vdev=net_pcap0,${rx}infinite_rx=1" --vdev=net_null0,no-rx=1
    exec "$bin" run --config "$toml" --busy-poll "${ESP_NEIGHBORS[@]}"
}
