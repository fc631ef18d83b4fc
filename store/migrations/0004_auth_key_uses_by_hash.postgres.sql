-- 0004_auth_key_uses_by_hash.sqlite.sql for PostgreSQL: the same moves,
-- reading the JSON with ->> instead of json_extract.
ALTER TABLE auth_key_uses RENAME TO auth_key_uses_by_name;

CREATE TABLE auth_key_uses (
	secret_hash TEXT PRIMARY KEY, -- lowercase "sha256:" + 64 hex digits
	uses        INTEGER NOT NULL DEFAULT 0
);

INSERT INTO auth_key_uses (secret_hash, uses)
SELECT lower(o.value::jsonb ->> 'secretHash'), SUM(u.uses)
FROM auth_key_uses_by_name u
JOIN config_objects o ON o.kind = 'authKey' AND o.name = u.name
WHERE o.value::jsonb ->> 'secretHash' != ''
GROUP BY lower(o.value::jsonb ->> 'secretHash');

DELETE FROM auth_key_uses_by_name
WHERE name IN (
	SELECT o.name FROM config_objects o
	WHERE o.kind = 'authKey' AND o.value::jsonb ->> 'secretHash' != ''
);
