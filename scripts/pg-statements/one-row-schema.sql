-- Reference: a table with one index, for one single-row INSERT per order.
CREATE TABLE orders (id bigserial PRIMARY KEY, status text NOT NULL);
