-- Migration: Create contracts table
-- Created: 2025-10-25
-- Description: Contracts signed by users.

BEGIN;

CREATE TABLE IF NOT EXISTS contracts (
  id SERIAL PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  title VARCHAR(255) NOT NULL,
  status VARCHAR(50) NOT NULL DEFAULT 'draft',
  starts_on DATE,
  ends_on DATE,
  created_at TIMESTAMP DEFAULT NOW(),
  CONSTRAINT contracts_dates_check CHECK (ends_on IS NULL OR starts_on IS NULL OR ends_on >= starts_on)
);

CREATE INDEX IF NOT EXISTS idx_contracts_user_id ON contracts(user_id);

COMMIT;
