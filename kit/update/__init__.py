"""Signed release bundles, release slots, and updates with a trial and an automatic way back (issue 17).

bundle.py: the bundle format and its verification (the contract with sync/HQ); keys.py: release keys;
slots.py: release slots and the ``current`` link; hold.py: the "no sale or admission now" flag;
busy.py: is the kit in use; journal.py / apply.py: the update itself and its recovery; cli.py, web.py.
"""
