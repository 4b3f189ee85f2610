"""Reading the project's TOML data files: every way one can fail is one sentence naming the file, the line when
there is one, and what to do."""
import copy
import re
import tomllib

from mkdump.errors import MkdumpError

_WHERE_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")

# One graph read asks for the product table seven times, the source manifest six and the dump driver families
# twice: the same bytes are parsed once per process. Callers get their own copy: some fill in what they read.
_PARSED = {}


def load(path, what, *, fix="restore it from the repository", error=MkdumpError, missing_ok=False):
    """The data of the TOML file `path`, which the messages call `what` (e.g. "the QEMU settings").

    `fix` says what to do about a missing or broken file, `error` is the MkdumpError subclass raised. With
    missing_ok, a file that does not exist reads as an empty table.
    """
    try:
        with open(path, "rb") as f:
            text = f.read()
        if text not in _PARSED:
            _PARSED[text] = tomllib.loads(text.decode())
        return copy.deepcopy(_PARSED[text])
    except FileNotFoundError as e:
        if missing_ok:
            return {}
        raise error(f"cannot read {what} {path}: {e.strerror}; {fix}.") from None
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror}; {fix}.") from None
    except UnicodeDecodeError as e:
        raise error(f"{what} {path} cannot be read: byte {e.start} is not UTF-8, so the file is not valid TOML; "
                    f"{fix}.") from None
    except tomllib.TOMLDecodeError as e:
        # Python 3.14 gives lineno and msg; before, the line is only in the text: "... (at line 3, column 7)".
        reason, line = getattr(e, "msg", None), getattr(e, "lineno", None)
        if reason is None:
            m = _WHERE_RE.search(str(e))
            reason, line = (str(e)[:m.start()], int(m.group(1))) if m else (str(e), None)
        where = f"line {line} is" if line else "it is"
        raise error(f"{what} {path} cannot be read: {where} not valid TOML ({reason}); correct "
                    f"{'that line' if line else 'the file'} or {fix}.") from None
