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

from plumbing.checks import one_line

LONGEST_WORD_SHOWN = 80  # characters of one word of a message, past which it is cut short


class ArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser with abbreviations off and one-line errors."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        message = re.sub(rf"\S{{{LONGEST_WORD_SHOWN + 1},}}", _cut_short, one_line(message))
        self.exit(2, f"{self.prog}: error: {message} (--help lists the options)\n")


def _cut_short(word: re.Match) -> str:
    text = word.group()
    half = LONGEST_WORD_SHOWN // 2 - 10
    return f"{text[:half]}...{text[-half:]} ({len(text):,} characters)"
