-- Use counts belong to a secret, not to the name it is declared under: a
-- key deleted and declared again with the same secretHash (a git revert, an
-- older commit) must not get its uses back, and renaming a key keeps its
-- count. Counts are keyed by the lowercase "sha256:<hex>" secretHash and
-- never reset.
ALTER TABLE auth_key_uses RENAME TO auth_key_uses_by_name;

CREATE TABLE auth_key_uses (
	secret_hash TEXT PRIMARY KEY, -- lowercase "sha256:" + 64 hex digits
	uses        INTEGER NOT NULL DEFAULT 0
);

-- Each name's count moves to the secretHash the applied config declares
-- under that name (until now a rotation or a deletion reset the count, so a
-- name's count is the count of its current secret). Names sharing one hash
-- were uses of one secret: their counts add up.
INSERT INTO auth_key_uses (secret_hash, uses)
SELECT lower(json_extract(o.value, '$.secretHash')), SUM(u.uses)
FROM auth_key_uses_by_name u
JOIN config_objects o ON o.kind = 'authKey' AND o.name = u.name
WHERE json_extract(o.value, '$.secretHash') != ''
GROUP BY lower(json_extract(o.value, '$.secretHash'));

DELETE FROM auth_key_uses_by_name
WHERE name IN (
	SELECT o.name FROM config_objects o
	WHERE o.kind = 'authKey' AND json_extract(o.value, '$.secretHash') != ''
);
-- What is left in auth_key_uses_by_name are counts of names the applied
-- config does not declare (there is no secret to bind them to). They are
-- kept for the record; nothing reads them.
