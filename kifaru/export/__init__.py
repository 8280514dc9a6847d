"""Exports of a finished run into the formats of the field (Camtrap DP), made from its records."""
