"""Container entry point of the predictor: ``python -m serving --model /mnt/models --port 8080``."""

import sys

from nexus.serving.entrypoint import main

if __name__ == "__main__":
    sys.exit(main())
