"""Generated users and devices for safe-copy tests, with the ground truth the tests check against."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

KEY_HEX = "5e" * 16 + "c0" * 16
OTHER_KEY_HEX = "19" * 32


@dataclass
class CopyData:
    users: list[dict]
    devices: list[dict]

    @property
    def emails(self) -> list[str]:
        return [u["email"] for u in self.users]

    def devices_per_user(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.devices:
            out[d["user_id"]] = out.get(d["user_id"], 0) + 1
        return out


def generate(n_users: int = 200, seed: int = 3) -> CopyData:
    rng = random.Random(seed)
    first = ["Ana", "Ben", "Chloé", "Dev", "Eun", "Femi", "Gus", "Hana"]
    last = ["Lima", "Okafor", "Müller", "Tanaka", "Novak", "Haddad", "Smith", "Rossi", "Kowalski", "Dubois"]
    users, devices = [], []
    for i in range(n_users):
        uid = f"usr_{i:06d}"
        name = rng.choice(first)
        users.append({
            "user_id": uid,
            # ASCII local parts: the e-mail rule does not match internationalised ones (chloé.1@...) yet.
            "email": f"{name.lower().replace('é', 'e')}.{i}@Example{rng.randint(1, 9)}.COM",
            "full_name": f"{name} {rng.choice(last)}-{rng.choice(last)}",
            "phone": f"+44 20 7946 {rng.randint(0, 9999):04d}",
            "api_token": "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") for _ in range(40)),
            "signup_at": f"20{rng.randint(15, 24)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:11:12",
            "last_ip": f"{rng.randint(11, 200)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            "plan": rng.choice(["free", "plus", "pro"]),
            "notes": rng.choice(["likes the night mode", "asked about billing", f"call back at +44 20 7946 {i % 10000:04d}"]),
        })
        for _ in range(rng.randint(0, 3)):
            devices.append({
                "device_id": f"dev_{len(devices):06d}",
                "user_id": uid,
                "mac": ":".join(f"{rng.randint(0, 255):02x}" for _ in range(6)),
                "model": rng.choice(["CAM-V2", "CAM-V3", "PLUG"]),
                "firmware": rng.choice(["4.9.6.218", "4.10.1.2"]),
            })
    return CopyData(users, devices)


def write_jsonl(folder: Path, data: CopyData) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("users.jsonl", data.users), ("devices.jsonl", data.devices)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def policy_text(users: str = "users.jsonl", devices: str = "devices.jsonl", *, notes: str = '"redact"',
                api_token: str = '"drop"', device_user: str = '"hmac"', key_env: str = "SG_COPY_KEY", extra_users: str = "") -> str:
    return f"""
version = 1
[keys.main]
env = "{key_env}"

[datasets."{users}"]
to = "users"
[datasets."{users}".fields]
user_id = "hmac"
email = "hmac"
full_name = "drop"
phone = {{ transform = "mask", keep_suffix = 2 }}
api_token = {api_token}
signup_at = {{ transform = "generalise", to = "month" }}
last_ip = {{ transform = "generalise", to = "network" }}
plan = "keep"
notes = {notes}
{extra_users}

[datasets."{devices}"]
to = "devices"
[datasets."{devices}".fields]
device_id = "keep"
user_id = {device_user}
mac = "hmac"
model = "keep"
firmware = "keep"
"""
