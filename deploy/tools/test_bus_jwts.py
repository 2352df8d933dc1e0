#!/usr/bin/env python3
"""Throw-away NATS operator material for validating configs: a fresh operator
and system account, their JWTs, printed as shell assignments.

Only `deploy/validate.sh` uses this, to render the NATS configs and start a
loopback cluster with them. Production keys come from `ritma bus init`; this
file never touches them. The encoding follows NATS nkeys (prefix byte,
CRC-16/XMODEM, base32) and JWT v2 (`ed25519-nkey`).
"""
import base64
import hashlib
import json
import shlex
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

PREFIX_OPERATOR = 14 << 3
PREFIX_ACCOUNT = 0


def crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=")


def public_key(prefix: int, key: Ed25519PrivateKey) -> str:
    raw = bytes([prefix]) + key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return b32(raw + crc16(raw).to_bytes(2, "little"))


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def jwt(signer: Ed25519PrivateKey, issuer: str, subject: str, name: str, nats: dict) -> str:
    claims = {"iat": int(time.time()), "iss": issuer, "name": name, "sub": subject, "nats": nats}
    claims["jti"] = b32(hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest())
    header = b64url(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = b64url(json.dumps(claims).encode())
    signature = signer.sign(f"{header}.{body}".encode())
    return f"{header}.{body}.{b64url(signature)}"


def main() -> None:
    operator = Ed25519PrivateKey.generate()
    system = Ed25519PrivateKey.generate()
    op_pub = public_key(PREFIX_OPERATOR, operator)
    sys_pub = public_key(PREFIX_ACCOUNT, system)
    op_jwt = jwt(operator, op_pub, op_pub, "ritma-validate",
                 {"type": "operator", "version": 2, "system_account": sys_pub})
    sys_jwt = jwt(operator, op_pub, sys_pub, "SYS", {
        "type": "account", "version": 2,
        "limits": {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                   "wildcards": True, "conn": -1, "leaf": -1},
    })
    for name, value in (("OPERATOR_JWT", op_jwt), ("SYSTEM_ACCOUNT", sys_pub), ("SYSTEM_ACCOUNT_JWT", sys_jwt)):
        print(f"{name}={shlex.quote(value)}")


if __name__ == "__main__":
    main()
