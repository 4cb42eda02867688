-- As floor.sql, with the whole row of each order: the columns of the
-- migration, its primary key. The completion compares the status through
-- an expression so that the plan keeps to the primary key (the service
-- compares it with an input column, to the same end).
\set n :n + 1
\set new (:client_id * 1000000000 + :n) * 8
\set old (:client_id * 1000000000 + :n - 1) * 8
BEGIN;
INSERT INTO orders (order_id, status, merchant_id, amount, currency, transaction_id, reason, created_at, maybe_charged, calls, due_at, trace) SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(:new::bigint + i), 12, '0'))::uuid, 'pending', 'merchant-1', 12.34, 'EUR', NULL, NULL, now(), false, 1, now() + interval '2 seconds', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' FROM generate_series(0, 7) i;
UPDATE orders SET status = 'completed', transaction_id = 'txn-abcdef', maybe_charged = true, calls = GREATEST(calls, 1), due_at = NULL WHERE order_id IN (SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(:old::bigint + i), 12, '0'))::uuid FROM generate_series(0, 7) i) AND (status || '') = 'pending';
COMMIT;
