#!/usr/bin/env python3
"""Run ``maoctl`` from a checkout: ``python3 maoctl.py --help``."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

from mao.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
