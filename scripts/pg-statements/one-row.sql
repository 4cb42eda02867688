-- Reference: one single-row INSERT, its own transaction.
INSERT INTO orders (status) VALUES ('completed');
