-- The floor of any durable order: eight new orders inserted and the eight
-- of this client's previous transaction completed, one commit for all
-- (about what one of order-service's shared transactions holds), into a
-- table of two columns and one index. n counts this client's
-- transactions (pgbench -D n=0).
\set n :n + 1
\set new (:client_id * 1000000000 + :n) * 8
\set old (:client_id * 1000000000 + :n - 1) * 8
BEGIN;
INSERT INTO orders (id, status) SELECT :new::bigint + i, 'pending' FROM generate_series(0, 7) i;
UPDATE orders SET status = 'completed' WHERE id BETWEEN :old::bigint AND :old::bigint + 7;
COMMIT;
