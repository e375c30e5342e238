"""The programs' command-line parser: argparse's, with the project's two rules.

* No abbreviated options: ``--epoch`` must not silently mean ``--epochs``.
* A bad command line gets one line on stderr, what was wrong and where the options are listed,
  instead of argparse's usage block and then the error (the exit status stays 2). A value
  argparse quotes back is cut short when it is long (a 5,000-character --dataset is shown by
  its start, its end and its length) and kept on one line.

Only the standard library: ``--help`` stays instant in every program.
"""

import argparse
import re
from typing import NoReturn

from plumbing.checks import cut_short, one_line

# Characters of one word of an error (a value, a path) past which it is cut short: a path a user
# typed is shown whole, a value of 5,000 characters is not echoed back.
LONGEST_WORD_SHOWN = 160


class ArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser with abbreviations off and one-line errors."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        message = re.sub(
            rf"\S{{{LONGEST_WORD_SHOWN + 1},}}",
            lambda word: cut_short(word.group(), LONGEST_WORD_SHOWN),
            one_line(message),
        )
        self.exit(2, f"{self.prog}: error: {message} (--help lists the options)\n")
