import sys

from sutra_fast.cli import main

sys.exit(main())
