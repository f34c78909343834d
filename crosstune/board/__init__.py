"""Boards: emulated aarch64 boards under qemu-user (`crosstune board ...`)."""
