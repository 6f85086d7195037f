# shellcheck shell=bash
# ipsecgw configs for the ESP pcap test (scripts/tests/esp_pcap.sh) and the ESP
# benchmark (perf/run.sh). Matches perf/esp/esp_pcap.py: the gateway under test is
# 198.51.100.1 (MAC 02:00:00:00:00:01 on both ports), the peer 198.51.100.2,
# plaintext flows 10.1.0.x -> 10.2.0.x.
#
#   esp_key ALG                 hex key||salt (fixed test key: these runs are local)
#   esp_config FILE DIR ALG UDP WINDOW EAL_ARG...
#       DIR=encap: port 0 "inside" (plaintext in), port 1 "outside" (ESP out)
#       DIR=decap: port 0 "outside" (ESP in), port 1 "inside" (plaintext out, via 10.9.0.254)
#   ESP_NEIGHBORS              the --neighbor flags both need (peer and inner next hop)
ESP_NEIGHBORS=(--neighbor 198.51.100.2=02:00:00:00:00:02 --neighbor 10.9.0.254=02:00:00:00:00:03)
ESP_SPI_IN=0x1001 ESP_SPI_OUT=0x2002

esp_key() {
    local n
    case $1 in aes128gcm) n=20 ;; aes256gcm | chacha20poly1305) n=36 ;; *) echo "esp_key: unknown $1" >&2; return 1 ;; esac
    # in and out keys differ in the first byte: $2 = 0 (in) or 1 (out)
    printf '%02x' "$((0x40 + ${2:-0}))"
    for ((i = 1; i < n; i++)); do printf '%02x' "$i"; done
}

esp_config() {
    local file=$1 dir=$2 alg=$3 udp=$4 window=$5; shift 5
    local eal="" a cfgalg
    for a in "$@"; do eal+="\"$a\", "; done
    case $alg in aes128gcm) cfgalg=aes128gcm16 ;; aes256gcm) cfgalg=aes256gcm16 ;; *) cfgalg=$alg ;; esac
    local p0 p1 lts rts route=""
    if [[ $dir == encap ]]; then
        p0='name = "inside"
dpdk_port = 0
addresses = ["10.1.0.1/24"]'
        p1='name = "outside"
dpdk_port = 1
addresses = ["198.51.100.1/24"]'
        lts=10.1.0.0/16 rts=10.2.0.0/16
    else
        p0='name = "outside"
dpdk_port = 0
addresses = ["198.51.100.1/24"]'
        p1='name = "inside"
dpdk_port = 1
addresses = ["10.9.0.1/24"]'
        lts=10.2.0.0/16 rts=10.1.0.0/16
        route='[[route]]
destination = "10.2.0.0/16"
via = "10.9.0.254"
port = "inside"'
    fi
    cat >"$file" <<TOML
[dpdk]
eal_args = [${eal%, }]
mbufs = 16383

[[port]]
$p0
mac = "02:00:00:00:00:01"

[[port]]
$p1
mac = "02:00:00:00:00:01"

$route

[[static_sa]]
name = "bench"
local = "198.51.100.1"
remote = "198.51.100.2"
encap = "$([[ $udp == 1 ]] && echo udp || echo esp)"
algorithm = "$cfgalg"
spi_in = $ESP_SPI_IN
spi_out = $ESP_SPI_OUT
key_in = "$(esp_key "$alg" 0)"
key_out = "$(esp_key "$alg" 1)"
local_ts = ["$lts"]
remote_ts = ["$rts"]
replay_window = $window
TOML
}
