-- As order-row.sql, with the idempotency key of each order: the key
-- inserted with its order, its answer stored with the outcome. Run on
-- the migration as it is (with the due index), without the due index, and
-- less its last UPDATE (the answer of the key not stored: what an answer
-- derived from the order row would save the database).
\set n :n + 1
\set new (:client_id * 1000000000 + :n) * 8
\set old (:client_id * 1000000000 + :n - 1) * 8
BEGIN;
INSERT INTO idempotency_keys (key, fingerprint, order_id, holder, lease_until, expires_at) SELECT 'key-' || (:new::bigint + i), 'fp0123456789abcdef0123456789abcdef', ('00000000-0000-4000-8000-' || lpad(to_hex(:new::bigint + i), 12, '0'))::uuid, '11111111-2222-4333-8444-555555555555'::uuid, now() + interval '2 seconds', now() + interval '1 day' FROM generate_series(0, 7) i;
INSERT INTO orders (order_id, status, merchant_id, amount, currency, transaction_id, reason, created_at, maybe_charged, calls, due_at, trace) SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(:new::bigint + i), 12, '0'))::uuid, 'pending', 'merchant-1', 12.34, 'EUR', NULL, NULL, now(), false, 1, now() + interval '2 seconds', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' FROM generate_series(0, 7) i;
UPDATE orders SET status = 'completed', transaction_id = 'txn-abcdef', maybe_charged = true, calls = GREATEST(calls, 1), due_at = NULL WHERE order_id IN (SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(:old::bigint + i), 12, '0'))::uuid FROM generate_series(0, 7) i) AND (status || '') = 'pending';
UPDATE idempotency_keys SET holder = NULL, lease_until = NULL, response_status = 201, response_headers = '[["location","/orders/x"]]'::jsonb, response_body = '\x7b226f726465725f6964223a2261663262363330312d303562362d343038622d613230652d313361663863633839663339222c22737461747573223a22636f6d706c65746564222c226d65726368616e745f6964223a226d65726368616e742d31222c22616d6f756e74223a2231322e3334222c2263757272656e6379223a22455552222c227472616e73616374696f6e5f6964223a2274786e2d616263646566227d'::bytea WHERE key IN (SELECT 'key-' || (:old::bigint + i) FROM generate_series(0, 7) i);
COMMIT;
