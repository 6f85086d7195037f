#!/usr/bin/python3
"""Packet rate of a DPDK port over a window, from the process's telemetry socket.

usage: telemetry_rate.py RUNTIME_DIR PORT WARMUP_S WINDOW_S PID [SLICE_S]
Waits for RUNTIME_DIR/dpdk_telemetry.v2, sleeps WARMUP_S, reads /ethdev/stats,PORT twice
WINDOW_S apart and prints "<opackets/s wall> <opackets per CPU-second of the worker>".

The second number divides by the CPU time the forwarding lcore thread (the busiest thread
of PID, normally "lcore-worker-1") actually got in the window, from /proc: on a machine
shared with other jobs it shows what the forwarder does per second of its own core.

With SLICE_S, the window is also read every SLICE_S seconds and a third number is
printed: the best slice's opackets per CPU-second of that thread, its CPU time taken in
nanoseconds from /proc/PID/task/TID/schedstat. On a VM whose cores other tenants share,
interference only ever slows the thread down (a busy sibling hyperthread, a descheduled
vCPU), so the best slice is the steadiest estimate of the undisturbed rate; the whole
window's figure mixes in however much interference the window happened to catch.
With THREADS=N in the environment (several worker lcores), the CPU time is that of the N
busiest threads together: the figures are then opackets per CPU-second of the workers.
"""
import json
import os
import socket
import sys
import time


def query(path, cmd):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    s.recv(16384)  # greeting: version, pid, max_output_len
    s.send(cmd.encode())
    reply = json.loads(s.recv(1 << 20).decode())
    s.close()
    return reply


def opackets(path, port):
    return query(path, f"/ethdev/stats,{port}")["/ethdev/stats"]["opackets"]


def thread_cpu(pid):
    """CPU seconds (user+system) per thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[tid] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return out


def busiest(before, after, n=1):
    """The n thread ids that used the most CPU between two thread_cpu() readings."""
    return sorted(after, key=lambda t: after[t] - before.get(t, 0.0), reverse=True)[:n]


def oncpu_ns(pid, tids):
    """Nanoseconds the threads tids have run together (first field of schedstat)."""
    total = 0
    for tid in tids:
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total


def best_slice(sock, port, pid, tids, window, slice_s):
    """Highest opackets per CPU-second of threads tids over window/slice_s slices."""
    n = max(1, round(window / slice_s))
    best = 0.0
    p0, c0 = opackets(sock, port), oncpu_ns(pid, tids)
    for _ in range(n):
        time.sleep(window / n)
        p1, c1 = opackets(sock, port), oncpu_ns(pid, tids)
        if c1 > c0:
            best = max(best, (p1 - p0) * 1e9 / (c1 - c0))
        p0, c0 = p1, c1
    return best


def main():
    if len(sys.argv) not in (6, 7):
        sys.exit(__doc__)
    rundir, port, warmup, window, pid = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    slice_s = float(sys.argv[6]) if len(sys.argv) == 7 else 0.0
    sock = os.path.join(rundir, "dpdk_telemetry.v2")
    for _ in range(300):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    else:
        sys.exit(f"no telemetry socket at {sock}")
    time.sleep(warmup)
    threads = int(os.environ.get("THREADS", "1"))
    t0, c0, p0 = time.monotonic(), thread_cpu(pid), opackets(sock, port)
    if slice_s > 0:
        # The workers are the threads that ran most during the warm-up's last slice.
        w0 = thread_cpu(pid)
        time.sleep(slice_s)
        best = best_slice(sock, port, pid, busiest(w0, thread_cpu(pid), threads), window, slice_s)
    else:
        time.sleep(window)
    t1, c1, p1 = time.monotonic(), thread_cpu(pid), opackets(sock, port)
    cpu = sum(c1[t] - c0.get(t, 0.0) for t in busiest(c0, c1, threads))
    pkts = p1 - p0
    rates = f"{pkts / (t1 - t0):.0f} {pkts / cpu if cpu > 0 else 0:.0f}"
    print(f"{rates} {best:.0f}" if slice_s > 0 else rates)


if __name__ == "__main__":
    main()
