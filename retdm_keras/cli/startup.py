"""Loading TensorFlow for a command without its C++ start-up log lines.

TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL`` when it is imported, so the variable must be set
before that. Some of its lines are printed while its shared libraries load, before the
variable is read (the oneDNN notice, and absl's "All log messages before
absl::InitializeLog() ..." banner); :func:`import_tensorflow` drops those lines when they
are below the level, and passes every other line of the import's stderr through.

``retdm-keras --debug`` or ``RETDM_KERAS_TF_LOGS=1`` shows all of TensorFlow's logs; a
``TF_CPP_MIN_LOG_LEVEL`` set by the user is kept as it is.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import tempfile

TF_LOGS_ENV = "RETDM_KERAS_TF_LOGS"
TF_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
QUIET_LEVEL = "2"
"""Default ``TF_CPP_MIN_LOG_LEVEL``: hides INFO and WARNING lines, keeps ERROR ones."""

_SEVERITIES = "IWEF"  # absl's INFO, WARNING, ERROR, FATAL = levels 0..3
# "I0000 00:00:1795977198.035269    2875 port.cc:153] message" (before absl is initialised
# the time is written as 00:00:<seconds since the epoch>); "I0131 13:45:07.123456 ..." after
_RECORD = re.compile(r"([IWEF])\d{4} +[\d:.]+ +\d+ +[^\s\]]+:\d+\] ")
_BANNER = "All log messages before absl::InitializeLog() is called are written to STDERR"


def _wants_tf_logs() -> bool:
    return os.environ.get(TF_LOGS_ENV, "").strip().lower() not in ("", "0", "false", "no")


def tf_log_level(*, debug: bool = False) -> int:
    """Set ``TF_CPP_MIN_LOG_LEVEL`` for the TensorFlow this process will load, and return the
    level (0: everything is shown). ``debug`` or ``RETDM_KERAS_TF_LOGS=1`` show TensorFlow's
    logs; a value the user set is left alone."""
    if debug or _wants_tf_logs():
        level = os.environ.get(TF_LEVEL_ENV, "0")
    else:
        level = os.environ.setdefault(TF_LEVEL_ENV, QUIET_LEVEL)
    try:
        return max(0, min(3, int(level)))
    except ValueError:
        return 0


def drop_startup_noise(text: str, level: int) -> str:
    """``text`` without absl log records below ``level`` (and, with ``level`` >= 1, without
    absl's banner); every other line is kept."""
    if level < 1:
        return text
    kept = []
    for line in text.splitlines(keepends=True):
        record = _RECORD.match(line)
        if record and _SEVERITIES.index(record.group(1)) < level:
            continue
        if _BANNER in line:
            continue
        kept.append(line)
    return "".join(kept)


def import_tensorflow(level: int) -> None:
    """``import tensorflow`` with its load-time log lines filtered by
    :func:`drop_startup_noise` (the process's stderr is redirected meanwhile); a plain
    import with ``level`` 0, or when TensorFlow is already loaded."""
    if level < 1 or "tensorflow" in sys.modules:
        importlib.import_module("tensorflow")
        return
    try:
        capture = tempfile.TemporaryFile()
    except OSError:  # no writable temporary folder
        importlib.import_module("tensorflow")
        return
    with capture:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no stderr file descriptor
            importlib.import_module("tensorflow")
            return
        os.dup2(capture.fileno(), 2)
        try:
            importlib.import_module("tensorflow")
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            sys.stderr.write(drop_startup_noise(capture.read().decode(errors="replace"), level))
            sys.stderr.flush()
