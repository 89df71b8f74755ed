"""Verification helpers: parity with hy3dgen fixtures, tiny random-weight models."""
