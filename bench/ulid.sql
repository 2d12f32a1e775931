-- Included by the benchmark seeds (psql \ir).

-- A ULID for time `t`: 10 Crockford base-32 characters of its milliseconds,
-- then 16 of `n` scrambled (unique per n).
CREATE FUNCTION pg_temp.ulid_at(t timestamptz, n bigint) RETURNS text AS $$
DECLARE
  alphabet CONSTANT text := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  ms bigint := (extract(epoch FROM t) * 1000)::bigint;
  r bigint := (n * 2654435761 + 97) % 1099511627776;
  out text := '';
BEGIN
  FOR i IN REVERSE 9..0 LOOP
    out := out || substr(alphabet, ((ms >> (5 * i)) & 31)::int + 1, 1);
  END LOOP;
  FOR i IN REVERSE 15..0 LOOP
    out := out || substr(alphabet, (((CASE WHEN i >= 8 THEN n ELSE r END) >> (5 * (i % 8))) & 31)::int + 1, 1);
  END LOOP;
  RETURN out;
END $$ LANGUAGE plpgsql IMMUTABLE;
