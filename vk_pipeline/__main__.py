"""`python -m vk_pipeline groups ...` / `python -m vk_pipeline search ...` (see `vk_pipeline.cli`)."""

import sys

from vk_pipeline.cli import main

sys.exit(main())
