#!/usr/bin/env python3
"""Calls helloworld.Greeter/SayHello N times on TARGET over TLS and prints,
as one JSON line, how many replies each greeting gave and the error codes:

  {"counts": {"Hello mesh from 127.0.0.1:50051": 3}, "errors": {"PERMISSION_DENIED": 1}}

The channel trusts --ca and, with --cert and --key, presents that client
certificate (mTLS): grpc.ssl_channel_credentials(root_certificates,
private_key, certificate_chain). TARGET is `127.0.0.1:PORT`: the server's
certificate must name that IP (the mesh test PKI adds the IP SAN 127.0.0.1).
A refused handshake shows as UNAVAILABLE.
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


def read(path):
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("-n", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=5.0)
    args = ap.parse_args()

    creds = grpc.ssl_channel_credentials(
        root_certificates=read(args.ca),
        private_key=read(args.key),
        certificate_chain=read(args.cert),
    )
    counts: dict = {}
    errors: dict = {}
    with grpc.secure_channel(args.target, creds) as channel:
        call = channel.unary_unary("/helloworld.Greeter/SayHello")
        for _ in range(args.n):
            try:
                reply = call(b"\x0a\x04mesh", timeout=args.timeout)
                name = decode_string_field(reply)
                counts[name] = counts.get(name, 0) + 1
            except grpc.RpcError as e:
                code = e.code().name if e.code() else "UNKNOWN"
                errors[code] = errors.get(code, 0) + 1
    print(json.dumps({"counts": counts, "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
