"""The engine tests: no PySide6 and no app imported (tests/test_layering.py checks), Python's normal garbage
collection, as `lmcore train` runs."""
