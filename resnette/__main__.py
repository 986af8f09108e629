"""`python -m resnette ...`: the same as the `resnette` command (and what torchrun runs)."""
import sys

from resnette.cli import main

sys.exit(main())
