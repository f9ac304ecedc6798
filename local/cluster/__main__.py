"""Run the emulator until interrupted: ``python -m local.cluster [--kubeconfig PATH] [--realtime-factor F]``.

Writes a kubeconfig (server, certificate-authority-data, a user with a valid EKS-style token) so ``kubectl`` works,
and rewrites it every ten minutes because tokens expire after fifteen. The simulated clock runs in real time times
``--realtime-factor`` (controllers and the kubelet move with it).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from local.cluster import Cluster

DEFAULT_KUBECONFIG = Path("local/.state/kubeconfig")
TOKEN_REWRITE_SECONDS = 600.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.cluster", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--kubeconfig", type=Path, default=DEFAULT_KUBECONFIG, help="where to write the kubeconfig")
    parser.add_argument(
        "--realtime-factor", type=float, default=1.0, help="simulated seconds per real second (0 keeps the clock still)"
    )
    parser.add_argument("--name", default="sts-staging", help="the EKS cluster name (signed into tokens)")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--port", type=int, default=0, help="listen port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args(argv)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    with Cluster(args.name, region=args.region, port=args.port) as cluster:
        path = cluster.write_kubeconfig(args.kubeconfig)
        if args.realtime_factor > 0:
            cluster.clock.run_realtime(args.realtime_factor)
        print(f"Kubernetes API emulator for {args.name} at {cluster.endpoint}", flush=True)
        print(f"kubeconfig: {path.resolve()}  (export KUBECONFIG={path.resolve()})", flush=True)
        while not done.wait(TOKEN_REWRITE_SECONDS):
            cluster.write_kubeconfig(args.kubeconfig)
        cluster.clock.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
