-- Variant: the reconciler's schedule in a narrow table of its own, beside
-- the migrated schema without its due index, so that the completion is a
-- HOT update of orders (nothing indexed changes).
CREATE TABLE order_due (order_id uuid PRIMARY KEY, due_at timestamptz NOT NULL, attempts integer NOT NULL DEFAULT 0, claimed_by uuid, trace text);
CREATE INDEX order_due_at ON order_due (due_at);
