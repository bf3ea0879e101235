import sys

from bitbot.cli import main

sys.exit(main())
