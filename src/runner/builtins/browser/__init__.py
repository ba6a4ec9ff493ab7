"""Browser checks: page-title and browser-steps on one shared Chromium
(session.py), with the evidence of failures (evidence.py)."""
