"""The course world: a deterministic bilingual (English/Korean) fictional world with ground-truth labels.

    >>> from course_lib.world import build_world, load
    >>> world = build_world()                      # laptop-sized defaults, well under a second
    >>> world.statement(world.facts(relation="capital")[0], "ko")
    '니졸의 수도는 변손논이다.'
    >>> docs = load("documents")                   # a datasets.Dataset, from the profile's config

Every chapter draws its data from here: documents of each source kind with
labelled noise (chapters 01-03), task sets with held-out splits (05-06), the
facts API for preference data and retrieval (07, 10).

Modules: ``hangul`` (particles, NFC), ``names`` (syllable-table names),
``templates`` (English/Korean sentences), ``entities`` (entities and facts),
``documents`` (source kinds), ``noise`` (labelled noise, PII, URLs), ``tasks``
(task families and splits), ``world`` (``World`` and the facts API),
``loading`` (``load``, real data, snapshot), ``splits`` (documents held out of pretraining),
``snapshot`` (writes ``data/world/``), ``fresh`` (passages about invented people, for reading
rather than recall).
"""

from course_lib.config import WorldConfig

from .fresh import FRESH_RELATIONS, fresh_names, fresh_passages, new_person, reserved_names
from .hangul import attach, final_consonant, format_ko, particle
from .loading import WorldDataError, load, load_external
from .splits import is_held_out, split_documents
from .world import TABLES, World, build_world, generate_world

__all__ = ["WorldConfig", "World", "build_world", "generate_world", "load", "load_external", "WorldDataError",
           "TABLES", "attach", "particle", "final_consonant", "format_ko", "is_held_out", "split_documents",
           "FRESH_RELATIONS", "fresh_names", "fresh_passages",
           "new_person", "reserved_names"]
