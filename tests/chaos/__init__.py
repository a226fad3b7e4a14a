"""Seeded chaos soak of a livesync session against the emulator (see docs/chaos.md)."""
