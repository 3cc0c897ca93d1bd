"""② The sandbox: starting the workers that run a submission's code, talking to them, and ending them.

Under bubblewrap (when available) the worker gets its own user, PID, IPC, network, UTS and
mount namespaces: a read-only view of /usr and the Python installation, a minimal /etc, a small
private /tmp, and nothing of the kit's solutions or checks, other submissions, the output folder
or the grader's environment. Without bubblewrap (the fallback) the worker is a process with the
same resource limits in a new session, a scrubbed environment and a temporary working directory;
when the grader runs as root, it runs under a user id of its own (root is exempt from RLIMIT_NPROC,
and a uid of its own lets the judge kill everything the worker started) with its root changed into
a tmpfs that holds only what it needs, as bubblewrap's does. Either way (on Linux, unless
AUTOGRADER_FORK_SERVER=off) each judge keeps one zygote that has imported torch and forks every worker.

What runs inside the sandbox is exactly the folder `inside/`; everything else here runs in the judge:
capability (what this machine supports), launch (starting a sandboxed process; linux and
inside/mounts have its ctypes), worker_client and zygote_client (the judge's handles on a worker
and on the slot's pre-warmed zygote; errors, why a worker stopped answering), budget, tree and cgroups
(memory and CPU over a worker's whole process tree, with cgroups where it can), processes (making sure
nothing survives a worker). The batch's judge processes are started by launch.start_judge too.
"""
