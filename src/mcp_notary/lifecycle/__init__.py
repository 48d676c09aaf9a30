"""Lifecycle of the stored trail: retention (hot, archive, total periods), legal hold and
crypto-shredding. Policies and plans are pure; the store, archive and key file are edges."""
