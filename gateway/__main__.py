"""``python -m gateway`` is the ``tts-gateway`` command."""

import sys

from gateway.cli import main

sys.exit(main())
