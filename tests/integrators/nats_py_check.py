"""An integrator written with a NATS client no one on this project wrote
(nats-py): with read-only, org-scoped credentials it must receive the org's
heartbeats and nothing else, and be denied when it publishes or reaches
outside its org. Prints a JSON report; exits non-zero on any failure."""

import argparse
import asyncio
import json
import sys

import nats


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--creds", required=True)
    ap.add_argument("--org", required=True)
    ap.add_argument("--foreign-org", required=True)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()

    errors: list[str] = []

    async def on_error(e: Exception) -> None:
        errors.append(str(e).lower())

    nc = await nats.connect(args.server, user_credentials=args.creds, error_cb=on_error,
                            allow_reconnect=False)
    subjects: list[str] = []

    async def on_msg(msg) -> None:
        subjects.append(msg.subject)

    # The default grant: telemetry and state changes of the org.
    await nc.subscribe(f"ritma.{args.org}.*.node.*.heartbeat", cb=on_msg)
    await nc.subscribe(f"ritma.{args.org}.*.state.>", cb=on_msg)
    await nc.subscribe(f"ritma.{args.foreign_org}.*.node.*.heartbeat", cb=on_msg)
    await nc.flush()
    await nc.publish(f"ritma.{args.org}.prod.node.fake.heartbeat", b"{}")
    await nc.flush()
    await asyncio.sleep(args.seconds)
    await nc.close()

    heartbeats = [s for s in subjects if s.endswith(".heartbeat")]
    report = {
        "received": len(subjects),
        "heartbeats": len(heartbeats),
        "foreign": [s for s in subjects if not s.startswith(f"ritma.{args.org}.")],
        "subscribe_denied": any("permissions violation for subscription" in e for e in errors),
        "publish_denied": any("permissions violation for publish" in e for e in errors),
    }
    print(json.dumps(report))
    ok = (report["heartbeats"] > 0 and not report["foreign"]
          and report["subscribe_denied"] and report["publish_denied"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
