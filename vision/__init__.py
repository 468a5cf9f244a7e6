"""Pure computer vision: types, face engines, quality, tracking, gallery and identity voting.

This package never imports fastapi, sqlalchemy, ``edge``, ``alerts`` or ``console``.
"""
