"""Migration scripts (this file makes setuptools ship the folder; Alembic ignores it)."""
