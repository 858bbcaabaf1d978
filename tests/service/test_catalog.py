"""The service catalog: tenants, hashed keys, memory ownership.

Scenarios:
- a key authenticates to its tenant; a wrong secret, an unknown id or a revoked key does not;
- only a salted sha256 of the secret is stored: the token appears nowhere in the database file;
- two keys made from the same secret would still hash differently (per-key salt);
- the secret is checked with hmac.compare_digest, also for unknown key ids;
- ownership: another tenant sees None, exactly as for a missing id.
"""
from __future__ import annotations

import hashlib
import hmac

import pytest

from hsa_memory.service.catalog import KEY_PATTERN, ServiceCatalog, UnknownKey


@pytest.fixture
def catalog(tmp_path):
    catalog = ServiceCatalog(f"sqlite:///{tmp_path / 'service.sqlite'}")
    yield catalog
    catalog.close()


def test_keys_authenticate_to_their_tenant(catalog):
    key, token = catalog.create_key("acme", "ci")
    assert KEY_PATTERN.fullmatch(token) and token.startswith(f"hsa_{key.key_id}_")
    assert catalog.authenticate(token) == key
    secret = token.split("_", 2)[2]
    assert catalog.authenticate(token[:-1] + ("x" if token[-1] != "x" else "y")) is None
    assert catalog.authenticate(f"hsa_{'0' * 12}_{secret}") is None
    assert catalog.authenticate(secret) is None
    assert catalog.authenticate("") is None
    revoked = catalog.revoke_key(key.key_id)
    assert revoked.revoked_us is not None
    assert catalog.authenticate(token) is None
    assert catalog.revoke_key(token).revoked_us == revoked.revoked_us
    with pytest.raises(UnknownKey, match="no API key with id 'ffffffffffff'"):
        catalog.revoke_key("ffffffffffff")


def test_only_salted_hashes_are_stored(tmp_path, catalog):
    tokens = [catalog.create_key("acme")[1] for _ in range(3)]
    catalog.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("service.sqlite*"))
    for token in tokens:
        secret = token.split("_", 2)[2]
        assert secret.encode() not in raw
        assert hashlib.sha256(secret.encode()).digest() not in raw
    with catalog.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT salt, secret_sha256 FROM service_keys").all()
    assert len({salt for salt, _ in rows}) == 3 and all(len(salt) == 16 and len(digest) == 32 for salt, digest in rows)


def test_secrets_are_compared_in_constant_time(catalog, monkeypatch):
    _, token = catalog.create_key("acme")
    calls = []
    compare = hmac.compare_digest

    def spy(a, b):
        calls.append((len(a), len(b)))
        return compare(a, b)

    monkeypatch.setattr("hsa_memory.service.catalog.hmac.compare_digest", spy)
    assert catalog.authenticate(token) is not None
    assert catalog.authenticate("hsa_000000000000_" + "A" * 43) is None
    assert catalog.authenticate("not-even-a-key") is None
    assert calls == [(32, 32)] * 3


def test_tenant_names_are_checked(catalog):
    for bad in ("", "-x", "a b", "x" * 65, "tenant/../other", "é"):
        with pytest.raises(ValueError, match="must be 1-64 characters"):
            catalog.create_key(bad)
    assert catalog.create_tenant("acme.eu_1-b") == "acme.eu_1-b"


def test_memories_belong_to_one_tenant(catalog):
    owned = catalog.add_memory("acme", "notes")
    assert catalog.memory("acme", owned.id) == owned
    assert catalog.memory("globex", owned.id) is None
    assert catalog.memories("globex") == [] and catalog.memories("acme") == [owned]
    assert catalog.remove_memory("globex", owned.id) is False
    assert catalog.remove_memory("acme", owned.id) is True
    assert catalog.memory("acme", owned.id) is None
