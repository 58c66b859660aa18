-- Whether a person has a name a user gave, written once for every reader (people list and show,
-- auto-association's "never merge two named persons", health's persons without a name, merges
-- that keep a name). A name counts when someone recorded giving it: named_by (`photodb people
-- name`), or created_by of a person a user made with a name (not auto_created). 'auto:' marks
-- automatic work, which never names anyone. So a person a user calls "Unknown" is named, and an
-- automatic 'Unknown' placeholder is not, whatever its auto_created says.
ALTER TABLE person ADD COLUMN named BOOLEAN GENERATED ALWAYS AS (
    (first_name IS NOT NULL OR last_name IS NOT NULL)
    AND ((named_by IS NOT NULL AND named_by NOT LIKE 'auto:%')
         OR (NOT auto_created AND created_by IS NOT NULL AND created_by NOT LIKE 'auto:%'))
) STORED;

-- Persons from before who-named-whom was recorded (created_by and named_by both empty) keep a
-- real name they carry; the bare 'Unknown' placeholder of automatic work stays unnamed.
UPDATE person SET named_by = 'user'
WHERE named_by IS NULL AND created_by IS NULL AND NOT auto_created
  AND (first_name IS NOT NULL OR last_name IS NOT NULL)
  AND NOT (first_name = 'Unknown' AND last_name IS NULL);
