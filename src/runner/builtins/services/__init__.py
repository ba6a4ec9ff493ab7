"""Services the daemon hosts: echo-listener and file-server, on one
listening helper (_listen.py)."""
