"""What the tests and the benchmarks share: scratch databases, the crawl as production runs it,
the comparison with the emulator's truth, fault mixes, seeded worlds and group-list corpora.

Never imported by the pipeline itself; it sits above everything else (like `demo.py`), so the
tests exercise the production wiring (`vk_pipeline.resources`) rather than a copy of it.
"""
