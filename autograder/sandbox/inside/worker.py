"""The worker process: runs one submission's definitions and answers the judge's requests.

Started by the judge's WorkerClient (sandbox/worker_client.py) as `python -m inside.worker`.
Requests arrive on stdin, replies leave on the original stdout; the student's own prints are sent
to stderr, which the judge caps. A batch, {"op": "batch", "requests": [...]}, is answered one reply per
request, in order, up to and including the first that fails.
"""
from __future__ import annotations

import os
import sys

import torch

from .execute import execute
from .handler import Handler, define_stand_ins
from .protocol import ProtocolError, read_message, write_message


def redirect_prints(errors: int) -> None:
    """Nothing to read on stdin; stdout and stderr go to `errors` (the judge's capped stderr pipe), unbuffered.

    The student's prints then never reach the replies, and a worker, which is killed rather than shut
    down, loses none of them. Both paths call it: this module's main and the zygote's forked child.
    """
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    for fd in (1, 2):
        if fd != errors:
            os.dup2(errors, fd)
    if errors not in (1, 2):
        os.close(errors)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True, write_through=True)


def serve(requests: int, replies: int, max_bytes: int) -> None:
    load = read_message(requests, max_bytes)
    stand_ins = define_stand_ins(load.get("stand_ins") or "")  # the kit's classes, before any student code runs
    namespace, failures = execute(load["chunks"])
    handler = Handler(namespace, stand_ins)
    write_message(replies, {"ok": True, "result": {"failures": failures}})
    while True:
        try:
            request = read_message(requests, max_bytes)
        except ProtocolError:  # the judge closed the pipe (it usually kills the worker first)
            return
        batch = request.get("requests") if request.get("op") == "batch" else None
        for one in batch if isinstance(batch, list) else [request]:
            if not answer(handler, one if isinstance(one, dict) else {}, replies):
                break  # the judge reads no further: the rest of a batch runs only after what it follows succeeded


def answer(handler: Handler, request: dict, replies: int) -> bool:
    """Answer one request; whether it succeeded."""
    reply = handler.handle(request)
    try:
        write_message(replies, reply)
    except (TypeError, ValueError) as exc:  # e.g. a tensor of a dtype the wire does not carry
        write_message(replies, {"ok": False, "error": {"type": "TypeError", "where": None,
                                                       "message": f"the answer cannot be sent back: {exc}"[:1000]}})
        return False
    return bool(reply.get("ok"))


def main() -> None:
    """A worker of its own (the fallback sandbox); argv: largest request in bytes, the private writable folder.

    Under bubblewrap, workers are forked by inside/zygote.py instead.
    """
    torch.set_num_threads(1)
    requests, replies = os.dup(0), os.dup(1)
    redirect_prints(2)
    max_bytes = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 28
    if len(sys.argv) > 2:
        os.chdir(sys.argv[2])
    serve(requests, replies, max_bytes)


if __name__ == "__main__":
    main()
