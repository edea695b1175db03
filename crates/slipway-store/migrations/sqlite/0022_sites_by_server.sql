-- A server's sites are listed in id order: with only UNIQUE (server_id, domain) to find them,
-- each page sorted all of the server's sites first.
CREATE INDEX sites_by_server ON sites (server_id, id);
