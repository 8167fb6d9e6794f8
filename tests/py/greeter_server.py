#!/usr/bin/env python3
"""A helloworld Greeter server (grpcio) for the mesh's peer tests.

SayHello answers HelloReply{message: NAME}, so a client can count which
server answered. Messages are encoded by hand (field 1, a string): no
generated code needed.

  greeter_server.py --name a [--port 0]          plain server; prints "PORT <n>"
  greeter_server.py --name a --port P --xds      xDS-enabled server
      (GRPC_XDS_BOOTSTRAP must be set; it serves once the control plane
       sends its Listener; prints "PORT P" once started)

Failure injection and observation (plain servers):
  --fail-rate F        fail this fraction of calls with UNAVAILABLE (a seeded
                       random stream, --seed, so runs repeat)
  --fail-mode M        trailers-only (default): abort before any message, the
                       status alone in a trailers-only response;
                       after-message: send the reply, then UNAVAILABLE in the
                       trailers
  --delay MS           sleep this long before answering
  --report-deadline    reply "NAME remaining=<ms>": the time left until the
                       call's deadline as the server sees it (from the
                       grpc-timeout it received), or "remaining=none"

Health:
  greeter_server.py --name a --health-file F
      also serves grpc.health.v1.Health (grpcio-health-checking): the server
      ("") and helloworld.Greeter are NOT_SERVING while file F exists,
      SERVING otherwise (checked every 20ms)
"""
import argparse
import os
import random
import sys
import threading
import time
from concurrent import futures

import grpc


def encode_string_field(value: str) -> bytes:
    data = value.encode()
    out = bytearray(b"\x0a")
    n = len(data)
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            break
    return bytes(out) + data


def serve_health(server, flag_file: str) -> None:
    """Adds the standard health service, NOT_SERVING while flag_file exists."""
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)

    def follow() -> None:
        last = None
        while True:
            serving = not os.path.exists(flag_file)
            if serving != last:
                status = (
                    health_pb2.HealthCheckResponse.SERVING
                    if serving
                    else health_pb2.HealthCheckResponse.NOT_SERVING
                )
                for name in ("", "helloworld.Greeter"):
                    servicer.set(name, status)
                last = serving
            time.sleep(0.02)

    threading.Thread(target=follow, daemon=True).start()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--xds", action="store_true")
    ap.add_argument("--fail-rate", type=float, default=0.0)
    ap.add_argument(
        "--fail-mode", choices=["trailers-only", "after-message"], default="trailers-only"
    )
    ap.add_argument("--delay", type=float, default=0.0, help="milliseconds")
    ap.add_argument("--report-deadline", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--health-file")
    args = ap.parse_args()

    reply = encode_string_field(args.name)
    rng = random.Random(args.seed)
    lock = threading.Lock()

    def say_hello(request: bytes, context) -> bytes:
        if args.delay > 0:
            time.sleep(args.delay / 1000.0)
        with lock:
            fail = rng.random() < args.fail_rate
        if args.report_deadline:
            remaining = context.time_remaining()
            left = "none" if remaining is None else str(int(remaining * 1000))
            out = encode_string_field(f"{args.name} remaining={left}")
        else:
            out = reply
        if fail:
            if args.fail_mode == "trailers-only":
                context.abort(grpc.StatusCode.UNAVAILABLE, "injected")
            # The reply goes out, then the status in the trailers.
            context.set_code(grpc.StatusCode.UNAVAILABLE)
            context.set_details("injected after message")
        return out

    handler = grpc.method_handlers_generic_handler(
        "helloworld.Greeter",
        {"SayHello": grpc.unary_unary_rpc_method_handler(say_hello)},
    )
    pool = futures.ThreadPoolExecutor(max_workers=16)
    if args.xds:
        server = grpc.server(pool, xds=True)
        creds = grpc.xds_server_credentials(grpc.insecure_server_credentials())
        port = server.add_secure_port(f"127.0.0.1:{args.port}", creds)
        if port <= 0:
            port = args.port
    else:
        server = grpc.server(pool)
        port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.add_generic_rpc_handlers((handler,))
    if args.health_file:
        serve_health(server, args.health_file)
    server.start()
    print(f"PORT {port}", flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
