#!/usr/bin/env python3
"""Calls helloworld.Greeter/SayHello N times on TARGET and prints, as one
JSON line, how many replies each server name gave and the error codes:

  {"counts": {"a": 70, "b": 30}, "errors": {"PERMISSION_DENIED": 3}}

TARGET may be `xds:///greeter` (GRPC_XDS_BOOTSTRAP must be set) or
`127.0.0.1:PORT`. The first call waits up to --wait seconds for the channel
(xDS resolution) to become ready.
"""
import argparse
import json

import grpc


def decode_string_field(data: bytes) -> str:
    if not data or data[0] != 0x0A:
        return ""
    n, shift, i = 0, 0, 1
    while i < len(data):
        b = data[i]
        n |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            break
        shift += 7
    return data[i : i + n].decode(errors="replace")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("-n", type=int, default=100)
    ap.add_argument("--wait", type=float, default=20.0)
    args = ap.parse_args()

    counts: dict = {}
    errors: dict = {}
    with grpc.insecure_channel(args.target) as channel:
        call = channel.unary_unary("/helloworld.Greeter/SayHello")
        for i in range(args.n):
            try:
                if i == 0:
                    reply = call(b"\x0a\x04mesh", timeout=args.wait, wait_for_ready=True)
                else:
                    reply = call(b"\x0a\x04mesh", timeout=5)
                name = decode_string_field(reply)
                counts[name] = counts.get(name, 0) + 1
            except grpc.RpcError as e:
                code = e.code().name if e.code() else "UNKNOWN"
                errors[code] = errors.get(code, 0) + 1
    print(json.dumps({"counts": counts, "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
