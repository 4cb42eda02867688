-- The floor: an order as two columns under one index, nothing else.
CREATE TABLE orders (id bigint PRIMARY KEY, status text NOT NULL);
