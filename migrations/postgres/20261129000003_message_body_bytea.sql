-- A message body may contain NUL (the contract allows any string), which PostgreSQL TEXT
-- refuses: store the body's UTF-8 bytes instead. The code decodes bytes on both backends
-- (SQLite keeps TEXT, which reads as the same bytes).
ALTER TABLE messages ALTER COLUMN body TYPE BYTEA USING convert_to(body, 'UTF8');
