"""HTTP checks: http-status (status.py) on a probing transport (probe.py),
with its body reader (body.py) and assertions (assertions.py)."""
