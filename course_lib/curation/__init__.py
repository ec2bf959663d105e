"""Chapter 02, data curation (데이터 정제): filters, quality models, deduplication, de-identification, pipeline.

Modules: ``filters`` (Gopher, C4, FineWeb rules; Korean via Kiwi), ``quality``
(hashed n-gram classifier, CCNet perplexity buckets), ``dedup`` (exact, URL,
line, MinHash + LSH, suffix-array substrings), ``pii`` (emails, phones, IPs,
resident registration numbers, cards), ``pipeline`` (steps over ``datasets``
with an audit of every document), ``evaluate`` (each against the world's labels:
``python -m course_lib.curation.evaluate --profile laptop``), ``effect`` (the zoo artifact
``curated`` and raw vs curated pretraining: ``python -m course_lib.curation.effect --profile ci``;
imported on its own, as it trains models).
"""

from . import dedup, filters, pii, pipeline, quality

__all__ = ["dedup", "filters", "pii", "pipeline", "quality"]
