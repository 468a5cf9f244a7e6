"""The central console: branches and their edge boxes, enrolment of VIPs, staff and plates for the whole bank,
bank-wide duplicate checks, bulk import, users, roles and an append-only audit, and its web UI.

A service of its own (``smartbranch console run``); it imports ``vision``, ``models``, ``vault`` and ``alerts``,
never ``edge``.
"""
