"""Where progress goes when a caller gives no `log` callable: standard error, one line at a time, at once (a
stage's lines must not wait in a buffer behind the output of the tools it runs)."""
import sys


def log_default(msg):
    print(msg, file=sys.stderr, flush=True)
