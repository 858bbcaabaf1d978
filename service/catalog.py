"""The service catalog: tenants, their API keys (salted hashes only) and the memories they own.

Its tables carry a ``service_`` prefix so they can share a database with the memories' own
catalog (one PostgreSQL URL for everything), or live in ``data_dir/service.sqlite``.

An API key reads ``hsa_<key id>_<secret>``: the key id (public, 12 hex digits) finds the row, the
secret (256 random bits) is checked against ``sha256(salt + secret)`` with ``hmac.compare_digest``.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import BigInteger, Index, LargeBinary, String, create_engine, delete, event, insert, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

KEY_PREFIX = "hsa_"
KEY_PATTERN = re.compile(r"^hsa_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Base(DeclarativeBase):
    pass


class TenantRow(Base):
    __tablename__ = "service_tenants"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_us: Mapped[int] = mapped_column(BigInteger)


class KeyRow(Base):
    __tablename__ = "service_keys"
    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    salt: Mapped[bytes] = mapped_column(LargeBinary(16))
    secret_sha256: Mapped[bytes] = mapped_column(LargeBinary(32))
    label: Mapped[str] = mapped_column(String(200), default="")
    created_us: Mapped[int] = mapped_column(BigInteger)
    revoked_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class MemoryOwnerRow(Base):
    __tablename__ = "service_memories"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    created_us: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_service_memories_tenant", "tenant_id", "created_us"),)


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    tenant: str
    label: str
    created_us: int
    revoked_us: int | None


@dataclass(frozen=True)
class OwnedMemory:
    id: str
    tenant: str
    name: str
    created_us: int


class UnknownKey(LookupError):
    """No key with that id: list the keys with ``list_keys``."""


def now_us() -> int:
    return time.time_ns() // 1000


def _digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()


class ServiceCatalog:
    """Tenants, keys and memory ownership in one SQLAlchemy database."""

    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite"):
            self.engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

            @event.listens_for(self.engine, "connect")
            def _connect(dbapi_conn, _record):
                dbapi_conn.execute("PRAGMA journal_mode=WAL")
                dbapi_conn.execute("PRAGMA busy_timeout=30000")
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        Base.metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def create_tenant(self, tenant: str) -> str:
        """Create a tenant (no-op when it exists); names are 1-64 of ``A-Z a-z 0-9 . _ -``."""
        if not TENANT_PATTERN.fullmatch(tenant or ""):
            raise ValueError(f"tenant {tenant!r} must be 1-64 characters of A-Z a-z 0-9 . _ - "
                             "(not starting with . _ -)")
        with self.engine.begin() as conn:
            if conn.execute(select(TenantRow.id).where(TenantRow.id == tenant)).first() is None:
                conn.execute(insert(TenantRow).values(id=tenant, created_us=now_us()))
        return tenant

    def create_key(self, tenant: str, label: str = "") -> tuple[ApiKey, str]:
        """A new key for ``tenant`` (created if absent); returns it and the token, shown only this once."""
        self.create_tenant(tenant)
        key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_bytes(16)
        created = now_us()
        with self.engine.begin() as conn:
            conn.execute(insert(KeyRow).values(id=key_id, tenant_id=tenant, salt=salt,
                                               secret_sha256=_digest(salt, secret),
                                               label=label, created_us=created, revoked_us=None))
        return ApiKey(key_id, tenant, label, created, None), f"{KEY_PREFIX}{key_id}_{secret}"

    def revoke_key(self, key: str) -> ApiKey:
        """Revoke a key by its id or its whole token; requests with it fail from now on."""
        match = KEY_PATTERN.fullmatch(key)
        key_id = match.group(1) if match else key
        with self.engine.begin() as conn:
            row = conn.execute(select(KeyRow).where(KeyRow.id == key_id)).one_or_none()
            if row is None:
                raise UnknownKey(f"no API key with id {key_id!r}; list them with list-keys")
            if row.revoked_us is None:
                conn.execute(update(KeyRow).where(KeyRow.id == key_id).values(revoked_us=now_us()))
            row = conn.execute(select(KeyRow).where(KeyRow.id == key_id)).one()
            return ApiKey(row.id, row.tenant_id, row.label, row.created_us, row.revoked_us)

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        query = select(KeyRow).order_by(KeyRow.created_us)
        if tenant is not None:
            query = query.where(KeyRow.tenant_id == tenant)
        with self.engine.connect() as conn:
            return [ApiKey(r.id, r.tenant_id, r.label, r.created_us, r.revoked_us) for r in conn.execute(query)]

    def authenticate(self, token: str) -> ApiKey | None:
        """The live key a token belongs to, or None; the secret is compared in constant time."""
        match = KEY_PATTERN.fullmatch(token)
        key_id, secret = match.groups() if match else ("", token)
        with self.engine.connect() as conn:
            row = conn.execute(select(KeyRow).where(KeyRow.id == key_id)).one_or_none() if key_id else None
        # an unknown id still pays for one hash and compare, so timing does not tell ids apart
        salt, expected = (row.salt, row.secret_sha256) if row is not None else (b"\0" * 16, b"\0" * 32)
        if not hmac.compare_digest(_digest(salt, secret), expected) or row is None or row.revoked_us is not None:
            return None
        return ApiKey(row.id, row.tenant_id, row.label, row.created_us, row.revoked_us)

    def add_memory(self, tenant: str, name: str, memory_id: str | None = None) -> OwnedMemory:
        row = OwnedMemory(memory_id or str(uuid.uuid4()), tenant, name, now_us())
        with self.engine.begin() as conn:
            conn.execute(insert(MemoryOwnerRow).values(id=row.id, tenant_id=tenant, name=name,
                                                       created_us=row.created_us))
        return row

    def memory(self, tenant: str, memory_id: str) -> OwnedMemory | None:
        """The memory if ``tenant`` owns it; None for another tenant's memory, exactly as for a missing one."""
        query = select(MemoryOwnerRow).where(MemoryOwnerRow.id == memory_id, MemoryOwnerRow.tenant_id == tenant)
        with self.engine.connect() as conn:
            row = conn.execute(query).one_or_none()
        return None if row is None else OwnedMemory(row.id, row.tenant_id, row.name, row.created_us)

    def memories(self, tenant: str) -> list[OwnedMemory]:
        query = (select(MemoryOwnerRow).where(MemoryOwnerRow.tenant_id == tenant)
                 .order_by(MemoryOwnerRow.created_us, MemoryOwnerRow.id))
        with self.engine.connect() as conn:
            return [OwnedMemory(r.id, r.tenant_id, r.name, r.created_us) for r in conn.execute(query)]

    def remove_memory(self, tenant: str, memory_id: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(delete(MemoryOwnerRow).where(MemoryOwnerRow.id == memory_id,
                                                               MemoryOwnerRow.tenant_id == tenant))
        return result.rowcount == 1
