"""course_lib: the library behind the LLM course.

One module or package per chapter (see DESIGN.md); the same code runs on a laptop
CPU or on many GPUs, chosen by the config profile (``course_lib.config``).
"""

__version__ = "0.1.0"
