"""Admin entry point: create, revoke and list API keys, as Python functions and a small CLI.

python -m hsa_memory.service.admin create-key --tenant acme --label ci
python -m hsa_memory.service.admin revoke-key 3f9a0c12b7de
python -m hsa_memory.service.admin list-keys --tenant acme

The catalog is the one the service uses: ``--catalog URL`` or ``HSA_SERVICE_CATALOG_URL``, otherwise
``service.sqlite`` in ``--data-dir`` or ``HSA_SERVICE_DATA_DIR``.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

import click

from .catalog import ApiKey, ServiceCatalog, UnknownKey
from .settings import Settings


@contextmanager
def _catalog(settings: Settings | None) -> Iterator[ServiceCatalog]:
    settings = settings or Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    catalog = ServiceCatalog(settings.service_catalog_url)
    try:
        yield catalog
    finally:
        catalog.close()


def create_key(tenant: str, label: str = "", settings: Settings | None = None) -> tuple[ApiKey, str]:
    """A new API key for ``tenant`` (created when new); the token is returned once and stored only hashed."""
    with _catalog(settings) as catalog:
        return catalog.create_key(tenant, label)


def revoke_key(key: str, settings: Settings | None = None) -> ApiKey:
    """Revoke a key by id (or whole token); ``UnknownKey`` when no such key exists."""
    with _catalog(settings) as catalog:
        return catalog.revoke_key(key)


def list_keys(tenant: str | None = None, settings: Settings | None = None) -> list[ApiKey]:
    with _catalog(settings) as catalog:
        return catalog.list_keys(tenant)


def _describe(key: ApiKey) -> dict:
    def when(us):
        return None if us is None else datetime.fromtimestamp(us / 1e6, timezone.utc).isoformat(timespec="seconds")

    return {"key_id": key.key_id, "tenant": key.tenant, "label": key.label, "created": when(key.created_us),
            "revoked": when(key.revoked_us)}


@click.group()
@click.option("--catalog", "catalog_url", envvar="HSA_SERVICE_CATALOG_URL",
              help="SQLAlchemy URL of the service catalog.")
@click.option("--data-dir", envvar="HSA_SERVICE_DATA_DIR", type=click.Path(file_okay=False),
              help="The service's data directory (its service.sqlite when no --catalog).")
@click.pass_context
def main(ctx: click.Context, catalog_url: str | None, data_dir: str | None) -> None:
    """Manage the memory service's tenants and API keys."""
    ctx.obj = Settings.from_env(catalog_url=catalog_url, data_dir=data_dir)


@main.command("create-key")
@click.option("--tenant", required=True, help="Tenant that owns the key (created when new).")
@click.option("--label", default="", help="A note saying who or what uses the key.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def create_key_command(settings: Settings, tenant: str, label: str, as_json: bool) -> None:
    """Create an API key; the token is printed once and never stored.

    \b
    python -m hsa_memory.service.admin create-key --tenant acme
    """
    try:
        key, token = create_key(tenant, label, settings)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tenant") from None
    if as_json:
        click.echo(json.dumps({**_describe(key), "token": token}))
    else:
        click.echo(token)
        click.echo(f"key id {key.key_id} for tenant {key.tenant}: store the token now, it is not shown again", err=True)


@main.command("revoke-key")
@click.argument("key")
@click.pass_obj
def revoke_key_command(settings: Settings, key: str) -> None:
    """Revoke a key by its id (or its whole token).

    \b
    python -m hsa_memory.service.admin revoke-key 3f9a0c12b7de
    """
    try:
        revoked = revoke_key(key, settings)
    except UnknownKey as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"revoked key {revoked.key_id} of tenant {revoked.tenant}")


@main.command("list-keys")
@click.option("--tenant", default=None, help="Only this tenant's keys.")
@click.pass_obj
def list_keys_command(settings: Settings, tenant: str | None) -> None:
    """List keys (ids, tenants, dates; never tokens) as JSON lines.

    \b
    python -m hsa_memory.service.admin list-keys --tenant acme
    """
    for key in list_keys(tenant, settings):
        click.echo(json.dumps(_describe(key)))


if __name__ == "__main__":
    main()
