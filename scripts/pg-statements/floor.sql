-- The floor of any durable order: eight new orders inserted and the eight
-- of the previous transaction of this client completed, one commit for
-- all (about what one shared transaction of order-service holds), into a
-- table of two columns and one index. n counts the transactions of this
-- client (pgbench -D n=0). (No quotes in these comments: pgbench would
-- misread the script.)
\set n :n + 1
\set new (:client_id * 1000000000 + :n) * 8
\set old (:client_id * 1000000000 + :n - 1) * 8
BEGIN;
INSERT INTO orders (id, status) SELECT :new::bigint + i, 'pending' FROM generate_series(0, 7) i;
UPDATE orders SET status = 'completed' WHERE id BETWEEN :old::bigint AND :old::bigint + 7;
COMMIT;
