# shellcheck shell=bash
# 2 MiB hugepages for a benchmark's DPDK processes: PAGES pages added to the kernel's
# pool and mounted on a private hugetlbfs below the benchmark's work dir, given back by
# huge_release (call it from the EXIT trap). Without them (no permission, no memory) the
# EAL arguments fall back to --no-huge, and the note says so next to the results.
#
#   huge_reserve WORKDIR PAGES   sets HUGE_MEM (EAL memory arguments), HUGE_MEMNOTE and
#                                HUGE_MNT (the mount, empty without hugepages)
#   huge_release                 unmounts and takes back the pages huge_reserve added
HUGE_MNT="" HUGE_ADDED=0
HUGE_MEM=(--no-huge -m 1024)
HUGE_MEMNOTE="--no-huge (hugepages unavailable: rates ~25-30% lower at 64 B)"

huge_reserve() {
    local dir=$1 pages=$2 before
    before=$(cat /proc/sys/vm/nr_hugepages)
    echo $((before + pages)) >/proc/sys/vm/nr_hugepages 2>/dev/null || return 0
    HUGE_ADDED=$(($(cat /proc/sys/vm/nr_hugepages) - before))
    mkdir -p "$dir/huge"
    if ((HUGE_ADDED >= 256)) && mount -t hugetlbfs -o pagesize=2M none "$dir/huge" 2>/dev/null; then
        HUGE_MNT=$dir/huge
        HUGE_MEM=(--huge-dir "$HUGE_MNT" -m 512)
        HUGE_MEMNOTE="2 MiB hugepages ($HUGE_ADDED reserved on a private hugetlbfs mount)"
    fi
}

huge_release() {
    local now
    if [[ -n $HUGE_MNT ]]; then
        umount "$HUGE_MNT" 2>/dev/null || true
        HUGE_MNT=""
    fi
    if ((HUGE_ADDED > 0)); then
        now=$(cat /proc/sys/vm/nr_hugepages)
        echo $((now > HUGE_ADDED ? now - HUGE_ADDED : 0)) >/proc/sys/vm/nr_hugepages || true
        HUGE_ADDED=0
    fi
}
