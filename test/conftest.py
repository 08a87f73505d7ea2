import os

os.environ.setdefault("INSPATIO_NO_PROGRESS", "1")
