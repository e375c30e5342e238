"""The programs' command-line parser: argparse's, with the project's two rules.

* No abbreviated options: ``--epoch`` must not silently mean ``--epochs``.
* A bad command line gets one line on stderr, what was wrong and where the options are listed,
  instead of argparse's usage block and then the error (the exit status stays 2).

Only the standard library: ``--help`` stays instant in every program.
"""

import argparse
from typing import NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser with abbreviations off and one-line errors."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (--help lists the options)\n")
