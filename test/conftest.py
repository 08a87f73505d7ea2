import os

os.environ.setdefault("INSPATIO_NO_PROGRESS", "1")

from inspatio_ros.runtime import keep_freed_memory

keep_freed_memory()
