"""``python -m kit`` and the ``fieldkit`` command.

``fieldkit run ...`` (what every service process starts with) goes straight to the runner in
kit/runners.py, and ``fieldkit up`` to the supervisor: click and the command line's imports cost each
of these long-running processes a few MB, which a 512 MB Pi feels. Everything else, ``--help``
included, is the click CLI in kit/cli.py.
"""

import sys


def builtin_hashes() -> None:
    """Import hashlib and hmac with Python's own sha256, blake2, ... instead of OpenSSL's.

    OpenSSL's libcrypto costs each long-running process ~3.5 MB RSS, for the few short hashes the kit
    makes (ledger chain, document digests). Python's sha256 takes ~4 us for an event's 300 bytes where
    OpenSSL takes 1.5, and ~16x OpenSSL's time on megabytes (a downloaded document). CPython falls back
    to its builtin hashes when ``_hashlib`` cannot be imported; afterwards ``_hashlib`` can be imported
    again by whoever needs OpenSSL itself (PIN scrypt in kit/secrets.py, TLS), which then pays for it.
    """
    if "hashlib" in sys.modules or "_hashlib" in sys.modules:
        return
    sys.modules["_hashlib"] = None  # makes `import _hashlib` raise ImportError
    try:
        import hashlib  # noqa: F401
        import hmac  # noqa: F401
    finally:
        del sys.modules["_hashlib"]


def die_with_supervisor() -> None:
    """A service `fieldkit up` started ends when the supervisor dies, however it dies.

    The services run in sessions of their own (Ctrl-C goes to the supervisor, which stops them in
    order), so a supervisor killed outright (the OOM killer, kill -9) would leave them running, and the
    next `fieldkit up` would start a second pos beside the first. Linux sends SIGTERM on the parent's
    death (prctl PR_SET_PDEATHSIG); a parent already gone before that was set is checked once after.
    """
    import os

    parent = os.environ.get("FIELDKIT_SUPERVISOR_PID", "")
    if not parent.isdigit() or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):
        sys.exit("the supervisor that started this service is gone")


def main() -> None:
    args = sys.argv[1:]
    if args[:1] in (["run"], ["up"]) and not {"-h", "--help"} & set(args):
        import os

        if "web" not in args[1:]:  # the web loads OpenSSL anyway (werkzeug imports ssl): faster hashes there
            builtin_hashes()
        os.umask(0o027)  # as kit.cli.UMASK: data files are not world-readable, as under the units' UMask=0027
        if args[0] == "run":
            from kit.runners import run_command

            die_with_supervisor()

            sys.exit(run_command(args[1:]))
        from kit.supervisor import up_command

        sys.exit(up_command(args[1:]))
    from kit.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
