"""Where progress goes when a caller gives no `log` callable: standard error, one line at a time, at once (a
stage's lines must not wait in a buffer behind the output of the tools it runs). On a terminal each line first
clears the status line a running make may have drawn there (kbuild.Progress), which is drawn again below it."""
import sys


def log_default(msg):
    # One write per line: stages running at once in SCons' threads must not cut into each other's lines (print
    # writes the text and its newline apart).
    sys.stderr.write(("\r\x1b[K" if sys.stderr.isatty() else "") + msg + "\n")
    sys.stderr.flush()
