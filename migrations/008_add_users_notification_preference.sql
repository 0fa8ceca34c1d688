-- Migration: Add notification_preference column with enum type
-- Created: 2025-10-25

BEGIN;

-- Create enum type
CREATE TYPE notification_preference AS ENUM ('email', 'sms', 'push', 'none');

-- Add column
ALTER TABLE users 
ADD COLUMN IF NOT EXISTS notification_preference notification_preference DEFAULT 'email';

CREATE INDEX idx_users_notification_preference ON users(notification_preference);

COMMIT;
