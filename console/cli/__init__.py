"""``smartbranch console …``: run, migrate, users and tokens, branches, bulk import."""
