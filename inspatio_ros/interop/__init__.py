"""Files other projects read: inspatio_world.py writes a world as an InSpatio-World v1.5 scene."""
