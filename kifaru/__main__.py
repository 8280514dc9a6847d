import sys

from kifaru.cli import main

sys.exit(main())
