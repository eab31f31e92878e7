"""pytest plugins shared by the tests, registered in tests/conftest.py (``pytest_plugins``):
test modules take their fixtures and never import one another."""
