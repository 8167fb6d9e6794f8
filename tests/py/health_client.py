#!/usr/bin/env python3
"""A grpc.health.v1 client (grpcio-health-checking) for the mesh's peer tests.

  health_client.py --target 127.0.0.1:PORT [--service NAME] check
      prints the status once: "STATUS SERVING" (or "ERROR <CODE>")
  health_client.py --target 127.0.0.1:PORT [--service NAME] watch
      prints "STATUS <name>" for each status the server streams, then
      "END" when the server ends the stream (or "ERROR <CODE>")
"""
import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def name(status: int) -> str:
    return health_pb2.HealthCheckResponse.ServingStatus.Name(status)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--service", default="")
    ap.add_argument("mode", choices=["check", "watch"])
    args = ap.parse_args()

    with grpc.insecure_channel(args.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=args.service)
        try:
            if args.mode == "check":
                reply = stub.Check(request, timeout=5)
                print(f"STATUS {name(reply.status)}", flush=True)
            else:
                for reply in stub.Watch(request, timeout=60):
                    print(f"STATUS {name(reply.status)}", flush=True)
                print("END", flush=True)
        except grpc.RpcError as e:
            code = e.code().name if e.code() else "UNKNOWN"
            print(f"ERROR {code}", flush=True)
            sys.exit(0)


if __name__ == "__main__":
    main()
