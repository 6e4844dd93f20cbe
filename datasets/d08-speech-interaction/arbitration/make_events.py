import json, math, random
rng = random.Random(20261203)
rooms = {"kitchen": (0.0, 0.0), "living_room": (6.0, 0.0), "bedroom": (6.0, 5.0), "study": (0.0, 5.0)}
homes = [
    {"kitchen": "kitchen-speaker", "living_room": "living-room-tv", "bedroom": "bedroom-clock"},
    {"kitchen": "kitchen-display", "living_room": "lounge-speaker", "study": "study-speaker", "bedroom": "bedside-speaker"},
]
out = []
for k in range(200):
    home = homes[k % 2]
    room = rng.choice(sorted(home))
    cx, cy = rooms[room]
    ux, uy = cx + rng.uniform(-1.8, 1.8), cy + rng.uniform(-1.8, 1.8)
    devices = []
    for r, name in sorted(home.items()):
        dx, dy = rooms[r][0] + rng.uniform(-0.5, 0.5), rooms[r][1] + rng.uniform(-0.5, 0.5)
        d = max(0.3, math.hypot(ux - dx, uy - dy))
        walls = 0 if r == room else 1
        level = 65 - 20 * math.log10(d) - 6 * walls + rng.gauss(0, 2.5)
        noise = 35 + rng.gauss(0, 3) + (8 if name.endswith("tv") and rng.random() < 0.3 else 0)
        devices.append({"device": name, "energy_db": round(level, 1), "snr_db": round(level - noise, 1)})
    rng.shuffle(devices)
    out.append({"event_id": f"ev-{k:04d}", "devices": devices, "expected": home[room]})
with open("events.jsonl", "w") as f:
    for e in out:
        f.write(json.dumps(e) + "\n")
right = sum(max(e["devices"], key=lambda d: d["snr_db"])["device"] == e["expected"] for e in out)
print(right, len(out))
