"""`python -m alexnet.train`: see alexnet/train/cli.py."""
import sys

from alexnet.train.cli import main

if __name__ == "__main__":
    sys.exit(main())
