-- Kinds of server item are declared by the engine (daemons now; more follow), which refuses an
-- unknown kind itself: the column only keeps the shape of a kind name.
ALTER TABLE server_items DROP CONSTRAINT server_items_kind_check;
ALTER TABLE server_items ADD CONSTRAINT server_items_kind_check CHECK (kind ~ '^[a-z_]{1,40}$');
