#!/usr/bin/python3
"""Packet rate of a DPDK port over a window, from the process's telemetry socket.

usage: telemetry_rate.py RUNTIME_DIR PORT WARMUP_S WINDOW_S PID
Waits for RUNTIME_DIR/dpdk_telemetry.v2, sleeps WARMUP_S, reads /ethdev/stats,PORT twice
WINDOW_S apart and prints "<opackets/s wall> <opackets per CPU-second of the worker>".

The second number divides by the CPU time the forwarding lcore thread (the busiest thread
of PID, normally "lcore-worker-1") actually got in the window, from /proc: on a machine
shared with other jobs it shows what the forwarder does per second of its own core.
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


def main():
    rundir, port, warmup, window, pid = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    sock = os.path.join(rundir, "dpdk_telemetry.v2")
    for _ in range(300):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    else:
        sys.exit(f"no telemetry socket at {sock}")
    time.sleep(warmup)
    t0, c0, p0 = time.monotonic(), thread_cpu(pid), opackets(sock, port)
    time.sleep(window)
    t1, c1, p1 = time.monotonic(), thread_cpu(pid), opackets(sock, port)
    cpu = max((c1[t] - c0.get(t, 0.0) for t in c1), default=0.0)
    pkts = p1 - p0
    print(f"{pkts / (t1 - t0):.0f} {pkts / cpu if cpu > 0 else 0:.0f}")


if __name__ == "__main__":
    main()
