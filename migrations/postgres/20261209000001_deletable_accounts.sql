-- An account can be deleted: its messages stay (user_id keeps its id, no longer a reference
-- to a row), rooms it owned keep going without an owner, and the rows that only mean
-- something with the account (memberships, reactions, joined rooms) go with it.
ALTER TABLE messages DROP CONSTRAINT messages_user_id_fkey;

ALTER TABLE rooms ALTER COLUMN owner_id DROP NOT NULL;
ALTER TABLE rooms DROP CONSTRAINT rooms_owner_id_fkey;
ALTER TABLE rooms ADD CONSTRAINT rooms_owner_id_fkey
    FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE SET NULL;

ALTER TABLE room_members DROP CONSTRAINT room_members_user_id_fkey;
ALTER TABLE room_members ADD CONSTRAINT room_members_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;

ALTER TABLE reactions DROP CONSTRAINT reactions_user_id_fkey;
ALTER TABLE reactions ADD CONSTRAINT reactions_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
-- The account deletion takes back its reactions first, found by user.
CREATE INDEX reactions_user ON reactions (user_id);

ALTER TABLE joined_rooms DROP CONSTRAINT joined_rooms_user_id_fkey;
ALTER TABLE joined_rooms ADD CONSTRAINT joined_rooms_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
