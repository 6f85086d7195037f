#!/usr/bin/env bash
# perf/pktgen/rfc2544.lua (pktgen-dpdk is not packaged here): it compiles with Lua 5.4,
# and run against a stand-in `pktgen` table whose "gateway" loses frames above a known
# rate it finds that rate within its resolution, and line rate when nothing is lost.
# The pcaps next to it are replayed through ipsecgw by scripts/tests/esp_pcap.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v lua5.4 >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lua5.4 >/dev/null
fi
luac5.4 -p perf/pktgen/rfc2544.lua

# run LIMIT: the stand-in gateway forwards everything up to LIMIT % of line rate.
run() {
    lua5.4 - "$1" <<'LUA'
local limit = tonumber(arg[1])
local rate, sent, got = 0, 0, 0
local clock = 0
pktgen = {
    clr = function() sent, got = 0, 0 end,
    set = function(_, what, v) if what == "rate" then rate = v end end,
    pcap = function() end,
    start = function() end,
    stop = function() end,
    -- 10 frames per % of line rate per ms of trial: losses start above `limit`.
    delay = function(ms)
        clock = clock + ms
        local n = math.floor(rate * 10 * ms / 1000 * 1000)
        if rate > 0 then
            sent = sent + n
            got = got + (rate <= limit and n or math.floor(n * limit / rate))
            rate = 0
        end
    end,
    portStats = function() return { [0] = { opackets = sent }, [1] = { ipackets = got } } end,
}
printf = function(...) io.write(string.format(...)) end
RFC2544 = { trial_ms = 100, settle_ms = 1 }
dofile("perf/pktgen/rfc2544.lua")
print(string.format("RESULT %.4f", RFC2544_RESULT and RFC2544_RESULT.rate or -1))
LUA
}
for limit in 37.3 100 81 3; do
    got=$(run "$limit" | sed -n 's/^RESULT //p')
    awk -v g="$got" -v l="$limit" 'BEGIN { exit !(g <= l && g > l - 0.5) }' ||
        { echo "esp_pcap_pktgen: FAIL: limit $limit, search found $got"; run "$limit"; exit 1; }
    echo "esp_pcap_pktgen: stand-in limit $limit% -> found $got%" >&2
done
echo "esp_pcap_pktgen: ok (rfc2544.lua compiles and finds the zero-loss rate within 0.5%)"
