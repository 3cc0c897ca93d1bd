"""Running a submission's definition chunks in a fresh module, and describing what they raised as plain data."""
from __future__ import annotations

import sys
import types


def execute(chunks: list[dict], module_name: str = "submission") -> tuple[dict, list[dict]]:
    """Run definition chunks one by one in a fresh module; return its namespace and the failures."""
    module = types.ModuleType(module_name)
    sys.modules[module_name] = module
    failures = []
    for chunk in chunks:
        try:
            exec(compile(chunk["code"], chunk["origin"], "exec"), module.__dict__)
        except BaseException as exc:  # noqa: BLE001 - SystemExit at import is the student's error too
            failures.append({"origin": chunk["origin"], **describe_exception(exc)})
    return module.__dict__, failures


def describe_exception(exc: BaseException) -> dict:
    """Type, message, the innermost line of the student's code and errno of `exc`, safe from a hostile exception."""
    try:
        message = str(exc)
    except BaseException:  # noqa: BLE001 - a hostile __str__
        message = "<unprintable>"
    tb, line = exc.__traceback__, None
    while tb is not None:  # innermost frame in the student's code
        if not tb.tb_frame.f_code.co_filename.startswith(("/", "<frozen")):
            line = f"{tb.tb_frame.f_code.co_filename}, line {tb.tb_lineno}"
        tb = tb.tb_next
    try:  # the judge names limits from it: ENOMEM, EAGAIN (processes), EFBIG, ENOSPC
        code = exc.errno if isinstance(exc, OSError) and isinstance(exc.errno, int) else None
    except BaseException:  # noqa: BLE001 - a hostile property
        code = None
    return {"type": type(exc).__name__, "message": message[:1000], "where": line, "errno": code}
