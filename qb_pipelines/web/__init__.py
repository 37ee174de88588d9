"""Admin web app: connection pages, OAuth callback and webhook intake (Starlette)."""
