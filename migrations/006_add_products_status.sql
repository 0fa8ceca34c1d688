-- Migration: Add status column to products
-- Created: 2025-10-25

BEGIN;

ALTER TABLE products 
ADD COLUMN IF NOT EXISTS status VARCHAR(50) DEFAULT 'active';

-- Make not null after populating
-- ALTER TABLE products ALTER COLUMN status SET NOT NULL;

CREATE INDEX idx_products_status ON products(status);

COMMIT;
