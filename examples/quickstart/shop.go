package main

// shopSchema is a tenant database as applications have them: a dozen
// tables with foreign keys, sequences and secondary indexes.
const shopSchema = `
CREATE TABLE customers (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE addresses (id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, line1 text NOT NULL, city text NOT NULL, country char(2) NOT NULL);
CREATE TABLE categories (id serial PRIMARY KEY, parent_id int REFERENCES categories, name text NOT NULL);
CREATE TABLE products (id bigserial PRIMARY KEY, category_id int NOT NULL REFERENCES categories, sku text NOT NULL UNIQUE, name text NOT NULL, price_cents int NOT NULL CHECK (price_cents >= 0));
CREATE TABLE inventory (product_id bigint PRIMARY KEY REFERENCES products, on_hand int NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, status text NOT NULL DEFAULT 'new', created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX orders_customer ON orders (customer_id, created_at);
CREATE TABLE order_items (order_id bigint NOT NULL REFERENCES orders ON DELETE CASCADE, line int NOT NULL, product_id bigint NOT NULL REFERENCES products, qty int NOT NULL, PRIMARY KEY (order_id, line));
CREATE TABLE payments (id bigserial PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders, amount_cents int NOT NULL, paid_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE shipments (id bigserial PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders, address_id bigint NOT NULL REFERENCES addresses, shipped_at timestamptz);
CREATE TABLE reviews (id bigserial PRIMARY KEY, product_id bigint NOT NULL REFERENCES products, customer_id bigint NOT NULL REFERENCES customers, stars smallint NOT NULL CHECK (stars BETWEEN 1 AND 5), body text);
CREATE INDEX reviews_product ON reviews (product_id);
CREATE TABLE coupons (code text PRIMARY KEY, percent_off int NOT NULL, valid_until date);
CREATE TABLE audit_log (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), actor text, action text NOT NULL, detail jsonb);
CREATE SEQUENCE invoice_numbers START 1000;

INSERT INTO customers (email, name) SELECT 'c' || g || '@example.com', 'Customer ' || g FROM generate_series(1, 2000) g;
INSERT INTO addresses (customer_id, line1, city, country) SELECT g, g || ' Main St', 'Springfield', 'US' FROM generate_series(1, 2000) g;
INSERT INTO categories (name) SELECT 'Category ' || g FROM generate_series(1, 20) g;
INSERT INTO products (category_id, sku, name, price_cents) SELECT 1 + g % 20, 'SKU-' || g, 'Product ' || g, 100 + g FROM generate_series(1, 500) g;
INSERT INTO inventory (product_id, on_hand) SELECT id, 100 FROM products;
INSERT INTO orders (customer_id) SELECT 1 + g % 2000 FROM generate_series(1, 3000) g;
INSERT INTO order_items SELECT o.id, l, 1 + (o.id * l) % 500, 1 FROM orders o, generate_series(1, 2) l;
INSERT INTO payments (order_id, amount_cents) SELECT id, 1000 FROM orders;
INSERT INTO coupons VALUES ('WELCOME', 10, NULL);
`
