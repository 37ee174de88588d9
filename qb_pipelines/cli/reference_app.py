"""``qb-pipelines reference-app serve``: Fieldwise, the reference app (:mod:`qb_pipelines.reference_app`)."""

from __future__ import annotations

import click

__all__ = ["reference_app"]


@click.group("reference-app")
def reference_app() -> None:
    """Fieldwise, a small field-service app integrated through the records API and the change feed."""


@reference_app.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8100, show_default=True, type=int)
@click.option("--database", default=None, help="SQLite file [env REFAPP_DATABASE].")
@click.option("--api-url", default=None, help="The integration's web app [env REFAPP_API_URL].")
@click.option("--api-key", default=None, help="The tenant's API key [env REFAPP_API_KEY].")
@click.option("--tenant", default=None, help="The tenant [env REFAPP_TENANT].")
@click.option("--poll-seconds", default=None, type=float, help="Feed polling period; 0 = callback only "
              "[env REFAPP_POLL_SECONDS, default 5].")
@click.option("--callback-secret", default=None, help="The signed callback's secret [env REFAPP_CALLBACK_SECRET].")
def serve(host: str, port: int, **options: object) -> None:
    """Serve Fieldwise (pages, /hooks/quickbooks, /healthz) and hear the change feed."""
    import uvicorn

    from qb_pipelines.reference_app import Config, ConfigError, create_app

    try:
        config = Config.from_env(**options)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Fieldwise on http://{host}:{port} for tenant {config.tenant} (records API {config.api_url})")
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning")
