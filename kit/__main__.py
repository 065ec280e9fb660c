"""``python -m kit`` and the ``fieldkit`` command.

``fieldkit run ...`` (what every service process starts with) goes straight to the runner in
kit/runners.py, and ``fieldkit up`` to the supervisor: click and the command line's imports cost each
of these long-running processes a few MB, which a 512 MB Pi feels. Everything else, ``--help``
included, is the click CLI in kit/cli.py.
"""

import sys


def main() -> None:
    args = sys.argv[1:]
    if args[:1] in (["run"], ["up"]) and not {"-h", "--help"} & set(args):
        import os

        os.umask(0o027)  # as kit.cli.UMASK: data files are not world-readable, as under the units' UMask=0027
        if args[0] == "run":
            from kit.runners import run_command

            sys.exit(run_command(args[1:]))
        from kit.supervisor import up_command

        sys.exit(up_command(args[1:]))
    from kit.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
