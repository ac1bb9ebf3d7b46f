-- Sample data for the demo PostgreSQL target (run once by the postgres image, in database "demo").
CREATE TABLE customers (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name       text NOT NULL,
  email      text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers (id),
  total_cents integer NOT NULL CHECK (total_cents >= 0),
  status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid', 'shipped', 'cancelled')),
  created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO customers (name, email) VALUES
  ('Ada Lovelace', 'ada@example.com'),
  ('Grace Hopper', 'grace@example.com'),
  ('Alan Turing', 'alan@example.com');

INSERT INTO orders (customer_id, total_cents, status) VALUES
  (1, 4200, 'paid'),
  (1, 1999, 'open'),
  (2, 12500, 'shipped'),
  (3, 700, 'cancelled');
