#!/usr/bin/env bash
# The container image (issue 4, item 7): builds it with scripts/build-image.sh, runs
# `ipsecgw --help` in it, then runs `ipsecgw run` in it the way README "## Container"
# says (hugepages from the host, --cap-add IPC_LOCK/NET_ADMIN/SYS_NICE), forwarding a
# pcap that scapy wrote between two net_pcap ports; scapy checks the output is the input
# and the counters printed on SIGTERM (podman stop) say so too.
#
# Slow (a release build inside a container) and needs podman, debootstrap and network
# to the Debian mirror: skipped unless IPSECGW_TEST_CONTAINER=1.
set -euo pipefail

if [ "${IPSECGW_TEST_CONTAINER:-0}" != 1 ]; then
    echo "container_image: skipped (set IPSECGW_TEST_CONTAINER=1 to build and run the image)"
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "container_image: needs root" >&2; exit 1; }
cd "$(dirname "$0")/../.."

TAG=ctrimg                          # prefix of everything this test creates
IMAGE=localhost/ipsecgw:$TAG-test
NAME=$TAG-$$
WORK=$(mktemp -d "/tmp/$TAG.XXXXXX")
HUGE=$WORK/hugepages                # private hugetlbfs mount, not the host's /dev/hugepages
PAGES=256                           # 2 MiB pages added for the run (512 MiB), removed after
NR=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
added=0

cleanup() {
    podman rm -f "$NAME" >/dev/null 2>&1 || true
    mountpoint -q "$HUGE" && umount "$HUGE"
    if [ "$added" -gt 0 ]; then echo $(( $(cat "$NR") - added )) >"$NR"; fi
    podman rmi "$IMAGE" >/dev/null 2>&1 || true   # the tag only: layers stay cached
    rm -rf "$WORK"
}
trap cleanup EXIT

IPSECGW_IMAGE=$IMAGE scripts/build-image.sh
mapfile -t opts < <(scripts/build-image.sh --podman-options)
read -r -a global <<<"${opts[0]:-}"
read -r -a limits <<<"${opts[1]:-}"

echo "container_image: ipsecgw --help in the image"
help=$(podman "${global[@]}" run --rm --network none "${limits[@]}" "$IMAGE" --help)
grep -q '^Usage: ipsecgw' <<<"$help" || { echo "container_image: unexpected --help output: $help" >&2; exit 1; }

echo "container_image: ipsecgw run on hugepages in the container"
before=$(cat "$NR")
echo $((before + PAGES)) >"$NR"
added=$(( $(cat "$NR") - before ))
[ "$added" -ge 128 ] || { echo "container_image: could only reserve $added hugepages" >&2; exit 1; }
mkdir -p "$HUGE"
mount -t hugetlbfs -o pagesize=2M nodev "$HUGE"

# 200 distinct frames of different lengths (documentation prefix 198.51.100.0/24).
/usr/bin/python3 - "$WORK/in.pcap" <<'PY'
import sys
from scapy.all import Ether, IP, UDP, Raw, wrpcap
frames = [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") /
          IP(src="198.51.100.1", dst="198.51.100.2") / UDP(sport=1000 + i, dport=9) /
          Raw(bytes((i * 7 + k) & 0xff for k in range(18 + (i * 37) % 1400)))
          for i in range(200)]
wrpcap(sys.argv[1], frames)
PY
cat >"$WORK/gw.toml" <<EOF
port = [{ name = "outside", dpdk_port = 0 }, { name = "inside", dpdk_port = 1 }]
forward = { pairs = [["outside", "inside"]] }
[dpdk]   # hugepages: no --no-huge
eal_args = ["-m", "128", "--no-pci", "--file-prefix", "$NAME",
            "--vdev=net_pcap0,rx_pcap=/data/in.pcap", "--vdev=net_pcap1,tx_pcap=/data/out.pcap"]
EOF

# The README's run line (minus --network host: pcap vdevs need no interfaces).
podman "${global[@]}" run -d --name "$NAME" --network none "${limits[@]}" \
    --cap-add IPC_LOCK --cap-add NET_ADMIN --cap-add SYS_NICE \
    -v "$HUGE:/dev/hugepages" -v "$WORK:/data" \
    "$IMAGE" run --config /data/gw.toml >/dev/null

count() { /usr/bin/python3 -c 'import sys
from scapy.all import rdpcap
try: print(len(rdpcap(sys.argv[1])))
except Exception: print(0)' "$1"; }
for _ in $(seq 100); do   # bounded wait: net_pcap flushes the output per burst
    [ "$(podman inspect -f '{{.State.Running}}' "$NAME")" = true ] || break
    [ -s "$WORK/out.pcap" ] && [ "$(count "$WORK/out.pcap")" -ge 200 ] && break
    sleep 0.2
done
podman stop -t 20 "$NAME" >/dev/null
status=$(podman inspect -f '{{.State.ExitCode}}' "$NAME")
log=$(podman logs "$NAME" 2>&1)
while IFS= read -r line; do echo "  | $line"; done <<<"$log"
[ "$status" = 0 ] || { echo "container_image: ipsecgw exited $status" >&2; exit 1; }

/usr/bin/python3 - "$WORK/in.pcap" "$WORK/out.pcap" <<'PY'
import sys
from scapy.all import rdpcap
sent = [bytes(p) for p in rdpcap(sys.argv[1])]
got = [bytes(p) for p in rdpcap(sys.argv[2])]
if got != sent:
    sys.exit(f"container_image: forwarded {len(got)} frames, sent {len(sent)}; bytes differ")
PY
rx=$(awk '$1 == "outside" {print $2}' <<<"$log")
tx=$(awk '$1 == "inside" {print $3}' <<<"$log")
{ [ "$rx" = 200 ] && [ "$tx" = 200 ]; } ||
    { echo "container_image: counters say outside rx=$rx inside tx=$tx, want 200/200" >&2; exit 1; }
echo "container_image: ok (image $(podman image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1/1e6}'))"
