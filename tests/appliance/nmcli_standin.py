"""A stand-in for NetworkManager's ``nmcli`` (NetworkManager cannot run in the test container).

Installed on PATH as ``nmcli`` by the ``nmcli`` fixture. It records every call (one JSON list per
line in ``$NMCLI_STANDIN_DIR/calls.jsonl``) and keeps a small model of NetworkManager in
``state.json``: connection profiles, devices and what each device is connected to. It answers the
terse (``-t``) queries the kit makes in nmcli's own format, colons escaped.
"""

import json
import os
import sys
from pathlib import Path

DIR = Path(os.environ["NMCLI_STANDIN_DIR"])
STATE = DIR / "state.json"


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def main(argv: list[str]) -> int:
    with (DIR / "calls.jsonl").open("a") as f:
        f.write(json.dumps(argv) + "\n")
    state = json.loads(STATE.read_text())
    args = list(argv)
    if args[:1] == ["--wait"]:
        args = args[2:]
    if args[:4] == ["-t", "-f", "NAME", "connection"] and args[4:5] == ["show"]:
        for name in state["connections"]:
            print(escape(name))
        return 0
    if args[:3] == ["-t", "-f", "DEVICE,TYPE,STATE,CONNECTION"] and args[3:5] == ["device", "status"]:
        for d in state["devices"]:
            print(":".join(escape(d[k]) for k in ("name", "type", "state", "connection")))
        return 0
    if args[:3] == ["radio", "wifi", "on"]:
        state["radio"] = "on"
    elif args[:2] == ["connection", "add"]:
        name = args[args.index("con-name") + 1]
        state["connections"].append(name)
    elif args[:2] == ["connection", "modify"]:
        if args[2] not in state["connections"]:
            print(f"Error: unknown connection '{args[2]}'.", file=sys.stderr)
            return 10
    elif args[:2] == ["connection", "up"]:
        name, ifname = args[2], args[args.index("ifname") + 1]
        if name not in state["connections"]:
            print(f"Error: unknown connection '{name}'.", file=sys.stderr)
            return 10
        if name in state.get("fail_up", []):
            print("Error: Connection activation failed: (7) Secrets were required, but not provided.", file=sys.stderr)
            return 4
        for d in state["devices"]:
            if d["name"] == ifname:
                d["state"], d["connection"] = "connected", name
    else:
        print(f"Error: the stand-in does not know: {' '.join(argv)}", file=sys.stderr)
        return 2
    STATE.write_text(json.dumps(state))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
