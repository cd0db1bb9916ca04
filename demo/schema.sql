-- demo/schema.sql — the financial-SaaS schema of the seed ("Managed Databases",
-- "Real-World Example: Financial SaaS"), created through the proxy by demo/run.sh.
--
-- This is the application's own DDL, unchanged: the proxy (demo/phantom.yaml,
-- encrypt section) rewrites the protected columns to bytea on the way through:
--   customers.email         deterministic (AES-256-SIV) - login lookups WHERE email = ?
--   customers.full_name     randomized (AES-256-GCM)    - display only
--   customers.phone         randomized                  - display only
--   customers.tax_id        randomized                  - never searched in the database
--   customers.address       randomized (jsonb)          - display and shipping only
--   payments.card_number    randomized
--   payments.bank_account   randomized
--   everything else         not encrypted (ids, plan_tier, created_at, country_code, amounts)
-- UNIQUE on email works (deterministic: equal emails, equal ciphertext); a
-- DEFAULT or CHECK on a protected column would be refused (the database
-- cannot evaluate it on ciphertext), so there are none.
--
-- The protected VARCHAR columns carry no length limit: their ciphertext (nonce,
-- tag, envelope header) is longer than the plaintext.

CREATE TABLE customers (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email        VARCHAR NOT NULL UNIQUE,
    full_name    VARCHAR NOT NULL,
    phone        VARCHAR,
    tax_id       VARCHAR,
    address      JSONB,
    plan_tier    VARCHAR(16) NOT NULL CHECK (plan_tier IN ('starter', 'business', 'enterprise')),
    created_at   TIMESTAMP NOT NULL DEFAULT now(),
    country_code CHAR(2) NOT NULL
);
CREATE INDEX customers_plan_tier_idx ON customers (plan_tier);
CREATE INDEX customers_created_at_idx ON customers (created_at);

CREATE TABLE payments (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  UUID NOT NULL REFERENCES customers (id),
    amount       NUMERIC(12, 2) NOT NULL CHECK (amount > 0),
    currency     CHAR(3) NOT NULL,
    card_number  VARCHAR,
    bank_account VARCHAR,
    status       VARCHAR(16) NOT NULL DEFAULT 'settled',
    created_at   TIMESTAMP NOT NULL DEFAULT now()
);
CREATE INDEX payments_customer_idx ON payments (customer_id);
