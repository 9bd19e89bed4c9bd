-- Named secrets per agent, write-only over the API. Values are encrypted by the application
-- (Fernet, key from ORDINAUT_SECRETS_KEY) before they reach the database.
CREATE TABLE agent_secrets (
    tenant_id    uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,63}$'),
    ciphertext   bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
