"""`python -m lmcore ...`: the `lmcore` command (how the GUI launches a training process)."""
import sys

from .cli import main

if __name__ == "__main__":  # importing the module (tests/test_layering.py does) must not run the command
    sys.exit(main())
