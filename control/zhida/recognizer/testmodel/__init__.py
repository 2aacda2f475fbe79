"""Builds the small synthetic-speech test model committed under `zhida/models/`.

It is a fixture for the engine path, not a recogniser.
"""
