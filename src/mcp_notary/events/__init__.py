"""Audit events: the one record shape every capture path produces."""
