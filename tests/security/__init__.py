"""Security tests over the real services: TLS and mTLS, and abusive clients."""
